import Foundation
import Testing
@testable import Checkpoints

/// Our reader against files written by the PyPI `safetensors` package
/// (scripts/reference/make_safetensors_fixtures.py).
@Suite struct SafetensorsReaderTests {
    static let dtypesPath = TestPaths.fixture("safetensors/dtypes.safetensors")

    func manifest(_ relative: String) throws -> JSONValue { try JSONReader.parse(try readBytes(TestPaths.fixture(relative))) }

    @Test func headerMatchesTheReferenceWriter() throws {
        let file = try SafetensorsFile(path: Self.dtypesPath)
        let expected = try manifest("safetensors/dtypes.expected.json")
        #expect(file.header.headerLength == expected["header_length"]?.intValue)
        let meta = try #require(expected["metadata"]?.objectValue)
        #expect(file.metadata.map(\.key) == meta.map(\.key))
        #expect(file.metadata.map(\.value) == meta.map { $0.value.stringValue ?? "" })
        let tensors = try #require(expected["tensors"]?.arrayValue)
        #expect(file.tensors.count == tensors.count)
        for e in tensors {
            let name = try #require(e["name"]?.stringValue)
            let t = try #require(file.lookup(name), "missing \(name)")
            #expect(t.type.name == e["dtype"]?.stringValue, "\(name)")
            #expect(t.shape == e["shape"]?.arrayValue?.compactMap(\.intValue), "\(name)")
            let offsets = e["data_offsets"]?.arrayValue?.compactMap(\.intValue) ?? []
            #expect(t.fileOffset == file.header.dataStart + offsets[0] && t.byteCount == offsets[1] - offsets[0], "\(name)")
        }
    }

    @Test func integerValuesMatch() throws {
        let file = try SafetensorsFile(path: Self.dtypesPath)
        let expected = try manifest("safetensors/dtypes.expected.json")
        var checked = 0
        for e in try #require(expected["tensors"]?.arrayValue) {
            guard let values = e["values"]?.arrayValue, let name = e["name"]?.stringValue else { continue }
            let t = try #require(file.lookup(name))
            let ours: [String] = try file.withRawBytes(name) { raw in
                (0..<t.elementCount).map { i -> String in
                    switch t.dtype! {
                    case .bool, .u8: return String(raw.load(fromByteOffset: i, as: UInt8.self))
                    case .i8: return String(raw.load(fromByteOffset: i, as: Int8.self))
                    case .i16: return String(raw.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))
                    case .u16: return String(raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                    case .i32: return String(raw.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))
                    case .u32: return String(raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
                    case .i64: return String(raw.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))
                    case .u64: return String(raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))
                    default: return "?"
                    }
                }
            }
            let reference = values.map { v -> String in if case .number(let s) = v { return s } else { return "?" } }
            #expect(ours == reference, "\(name)")
            checked += 1
        }
        #expect(checked >= 9)
    }

    /// Every float tensor widened to F32 equals ml_dtypes' `astype(np.float32)` bit for bit.
    @Test func floatWideningMatchesMLDtypes() throws {
        let file = try SafetensorsFile(path: Self.dtypesPath)
        let expected = try SafetensorsFile(path: TestPaths.fixture("safetensors/dtypes.expected.safetensors"))
        #expect(expected.tensors.count >= 9)
        var seen = Set<DType>()
        for e in expected.tensors {
            let ours = try file.readF32(e.name)
            let reference = try expected.readF32(e.name)
            let dtype = try #require(try file.info(e.name).dtype)
            #expect(ours.sameBits(as: reference), "\(e.name) (\(dtype.code))")
            seen.insert(dtype)
        }
        #expect(seen.isSuperset(of: [.f64, .f32, .f16, .bf16, .f8e4m3, .f8e5m2, .f8e8m0, .f8e4m3fnuz, .f8e5m2fnuz]))
    }

    @Test func stridedReadEqualsTheSameBlockOfAFullRead() throws {
        let file = try SafetensorsFile(path: Self.dtypesPath)
        let name = "bf16_all"
        let t = try file.info(name)
        #expect(t.shape == [256, 256])
        let full = try file.readF32(name)
        let block = try file.readF32(name, ranges: [10..<13, 250..<256])
        var expected: [Float] = []
        for r in 10..<13 { for c in 250..<256 { expected.append(full[r * 256 + c]) } }
        #expect(block.sameBits(as: expected))
        let rows = try file.readF32(name, ranges: [255..<256])
        #expect(rows.sameBits(as: Array(full[(255 * 256)...])))
        #expect(throws: TensorStoreError.self) { try file.readF32(name, ranges: [0..<257]) }
    }

    @Test func everyMalformedFileIsRejectedWithItsKind() throws {
        let entries = try #require(try manifest("safetensors/malformed/manifest.json").arrayValue)
        #expect(entries.count >= 30)
        for e in entries {
            let name = try #require(e["file"]?.stringValue)
            let kind = try #require(e["kind"]?.stringValue)
            let path = TestPaths.fixture("safetensors/malformed/\(name)")
            do {
                _ = try SafetensorsFile(path: path)
                Issue.record("\(name) was accepted; expected \(kind)")
            } catch let error as SafetensorsError {
                #expect(error.kind == kind, "\(name): \(error)")
                #expect(error.description.contains(path), "\(name): the message names the file")
            }
        }
    }

    @Test func validEdgeFilesOpen() throws {
        let entries = try #require(try manifest("safetensors/valid_edge/manifest.json").arrayValue)
        for e in entries {
            let name = try #require(e["file"]?.stringValue)
            let file = try SafetensorsFile(path: TestPaths.fixture("safetensors/valid_edge/\(name)"))
            let tensors = e["tensors"]?.arrayValue ?? []
            #expect(file.tensors.count == tensors.count, "\(name)")
            for t in tensors {
                let tname = try #require(t["name"]?.stringValue)
                let hex = try file.withRawBytes(tname) { $0.map { String(format: "%02x", $0) }.joined() }
                #expect(hex == t["data_hex"]?.stringValue, "\(name): \(tname)")
            }
        }
    }

    @Test func shardedFolderRoutesNamesToShards() throws {
        let folder = TestPaths.fixture("safetensors/sharded")
        let store = try ShardedSafetensors(folder: folder)
        let expected = try manifest("safetensors/sharded.expected.json")
        #expect(store.shards.count == expected["num_shards"]?.intValue)
        let tensors = try #require(expected["tensors"]?.arrayValue)
        #expect(store.tensors.count == tensors.count)
        for e in tensors {
            let name = try #require(e["name"]?.stringValue)
            let t = try store.info(name)
            #expect((t.file as NSString).lastPathComponent == e["shard"]?.stringValue, "\(name)")
            let values = try store.readF32(name)
            let sum = values.reduce(0.0) { $0 + Double($1) }
            let expectedSum = try #require(e["sum"]?.doubleValue)
            #expect(abs(sum - expectedSum) <= 1e-5 * max(1, abs(expectedSum)), "\(name)")
            let first = e["first4"]?.arrayValue?.compactMap(\.doubleValue).map(Float.init) ?? []
            #expect(Array(values.prefix(first.count)) == first, "\(name)")
        }
    }

    /// A copy of the sharded fixture with its index edited by `edit`.
    func shardedCopy(editIndex edit: (inout [JSONMember]) -> Void) throws -> String {
        try TestPaths.shardedCopy(of: TestPaths.fixture("safetensors/sharded"), indexFileName: ShardedSafetensors.indexFileName, editIndex: edit)
    }

    @Test func staleIndexIsAnErrorNamingTheTensor() throws {
        let missing = try shardedCopy { $0.append(JSONMember("model.layers.9.mlp.up_proj.weight", .string("model-00001-of-00003.safetensors"))) }
        defer { try? FileManager.default.removeItem(atPath: missing) }
        #expect(throws: SafetensorsError.staleIndex(folder: missing, detail: "tensor 'model.layers.9.mlp.up_proj.weight' is listed in shard 'model-00001-of-00003.safetensors' but no shard holds it")) {
            try ShardedSafetensors(folder: missing)
        }
        var removed = ""
        let unlisted = try shardedCopy { removed = $0.removeLast().key }
        defer { try? FileManager.default.removeItem(atPath: unlisted) }
        do {
            _ = try ShardedSafetensors(folder: unlisted)
            Issue.record("an index missing '\(removed)' was accepted")
        } catch let e as SafetensorsError {
            #expect(e.kind == "staleIndex" && e.description.contains(removed))
        }
        let moved = try shardedCopy { map in
            let i = map.firstIndex { $0.value.stringValue == "model-00001-of-00003.safetensors" }!
            map[i].value = .string("model-00002-of-00003.safetensors")
        }
        defer { try? FileManager.default.removeItem(atPath: moved) }
        #expect(errorKind { _ = try ShardedSafetensors(folder: moved) } == "staleIndex")
        let absent = try shardedCopy { $0[0].value = .string("model-00009-of-00009.safetensors") }
        defer { try? FileManager.default.removeItem(atPath: absent) }
        #expect(errorKind { _ = try ShardedSafetensors(folder: absent) } == "staleIndex")
        // an empty weight_map used to open as a checkpoint with no weights (issue 13)
        let empty = try shardedCopy { $0.removeAll() }
        defer { try? FileManager.default.removeItem(atPath: empty) }
        #expect(errorKind { _ = try ShardedSafetensors(folder: empty) } == "invalidIndex")
        let escape = try shardedCopy { $0[0].value = .string("../model.safetensors") }
        defer { try? FileManager.default.removeItem(atPath: escape) }
        #expect(errorKind { _ = try ShardedSafetensors(folder: escape) } == "invalidIndex")
    }

    @Test func checkpointOpensFolderWithConfig() throws {
        let c = try Checkpoint.open(TestPaths.fixture("safetensors/sharded"))
        let config = try c.requireConfig()
        #expect(config.modelType == "llama" && config.layers == 3 && config.heads == 4 && config.kvHeads == 2 && config.headDim == 8)
        let nope = try Checkpoint.open(TestPaths.fixture("safetensors/sharded"), position: try PositionSpec(parsing: "layers:1"))
        #expect(try nope.requireConfig().positions == [.rope, .none, .rope])
        #expect(throws: PositionSpecError.layerOutOfRange(layer: 7, layerCount: 3)) {
            _ = try Checkpoint.open(TestPaths.fixture("safetensors/sharded"), position: try PositionSpec(parsing: "layers:7"))
        }
    }
}

/// A config.json that is a dangling or looping symbolic link is reported as such, not dropped
/// as if there were no config (issue 13).
@Suite struct ConfigLinkTests {
    @Test(arguments: ["dangling", "loop"]) func brokenConfigLinkIsReported(_ kind: String) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nopekit-configlink-\(kind)-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: TestPaths.fixture("safetensors/sharded"), toPath: dir + "/m")
        try FileManager.default.removeItem(atPath: dir + "/m/config.json")
        if kind == "dangling" {
            try FileManager.default.createSymbolicLink(atPath: dir + "/m/config.json", withDestinationPath: dir + "/absent.json")
        } else {
            try FileManager.default.createSymbolicLink(atPath: dir + "/m/config.json", withDestinationPath: dir + "/m/other.json")
            try FileManager.default.createSymbolicLink(atPath: dir + "/m/other.json", withDestinationPath: dir + "/m/config.json")
        }
        let c = try Checkpoint.open(dir + "/m")
        #expect(throws: ModelConfigError.unreadable(file: dir + "/m/config.json", detail: "a symbolic link to a missing file, or a loop of links")) {
            try c.requireConfig()
        }
    }
}
