import Foundation
import Testing
@testable import Checkpoints

/// Our `.bin` reader against files written by `torch.save` and against torch's own
/// `torch.load(weights_only=True)`: every tensor it returned, made contiguous, is in
/// `fixtures/pytorch/expected/<fixture>.safetensors` (scripts/reference/make_pytorch_fixtures.py).
@Suite struct PyTorchReaderTests {
    static let pwned = "/tmp/nopekit-pwned"

    /// Every good fixture the script writes; `goodFixturesAreAllListed` keeps this in step.
    static let goodFixtures = ["plain.bin", "dtypes.bin", "views.bin", "params.bin", "nested.bin", "deflated.bin",
                               "zip64.bin", "bigendian.bin", "oldroot.bin", "nocrc.bin", "legacy.bin", "sharded"]

    static func path(_ relative: String) -> String { TestPaths.fixture("pytorch/\(relative)") }

    static func manifest() throws -> JSONValue { try JSONReader.parse(try readBytes(path("manifest.json"))) }

    static func open(_ fixture: String) throws -> any TensorStore {
        fixture == "sharded" ? try ShardedPyTorch(folder: path(fixture)) : try PyTorchFile(path: path(fixture))
    }

    /// The kind of a thrown `PyTorchError`, or the error's type name, or nil if nothing threw.
    func pyTorchErrorKind(_ body: () throws -> Void) -> String? {
        do { try body(); return nil } catch let e as PyTorchError { return e.kind } catch { return "\(type(of: error)): \(error)" }
    }

    // MARK: Agreement with torch

    @Test func goodFixturesAreAllListed() throws {
        let good = try #require(try Self.manifest()["good"]?.objectValue)
        #expect(Set(good.map(\.key)) == Set(Self.goodFixtures))
    }

    /// Names, dtypes, shapes and every byte equal what torch.load returned.
    @Test(arguments: goodFixtures)
    func tensorsMatchTorchLoadBitForBit(_ fixture: String) throws {
        let entry = try #require(try Self.manifest()["good"]?[fixture])
        let store = try Self.open(fixture)
        let expected = try SafetensorsFile(path: Self.path(try #require(entry["expected"]?.stringValue)))
        let names = try #require(entry["tensors"]?.arrayValue).compactMap(\.stringValue)
        #expect(!names.isEmpty)
        #expect(Set(store.tensors.map(\.name)) == Set(names), "\(fixture)")
        #expect(store.tensors.count == names.count, "\(fixture): no duplicates")
        #expect(Set(expected.tensors.map(\.name)) == Set(names))
        for name in names {
            let ours = try store.info(name), theirs = try expected.info(name)
            #expect(ours.dtype == theirs.dtype, "\(fixture) \(name)")
            #expect(ours.shape == theirs.shape, "\(fixture) \(name)")
            #expect(ours.byteCount == theirs.byteCount, "\(fixture) \(name)")
            let a = try store.withRawBytes(name) { [UInt8]($0) }
            let b = try expected.withRawBytes(name) { [UInt8]($0) }
            #expect(a == b, "\(fixture) \(name): bytes differ")
        }
    }

    @Test func everyTorchDTypeWithANopekitDTypeIsRead() throws {
        var seen = Set<DType>()
        for fixture in ["plain.bin", "dtypes.bin"] {
            for t in try PyTorchFile(path: Self.path(fixture)).tensors { seen.insert(try #require(t.dtype)) }
        }
        #expect(seen == [.f32, .f16, .bf16, .i64, .f64, .i32, .i16, .i8, .u8, .bool, .c64,
                         .f8e4m3, .f8e5m2, .f8e4m3fnuz, .f8e5m2fnuz, .f8e8m0, .u16, .u32, .u64])
    }

    @Test func floatTensorsWidenLikeTheOracle() throws {
        let file = try PyTorchFile(path: Self.path("views.bin"))
        let expected = try SafetensorsFile(path: Self.path("expected/views.safetensors"))
        for t in expected.tensors {
            #expect(try file.readF32(t.name).sameBits(as: try expected.readF32(t.name)), "\(t.name)")
        }
        // A sub-block of a gathered (transposed) tensor.
        let block = try file.readF32("transposed", ranges: [1..<3, 2..<4])
        #expect(block.sameBits(as: try expected.readF32("transposed", ranges: [1..<3, 2..<4])))
        // Streaming a gathered tensor in chunks yields the same bytes.
        var streamed: [UInt8] = []
        try file.forEachChunk("cols", chunkBytes: 8) { streamed += $0 }
        #expect(streamed == (try expected.withRawBytes("cols") { [UInt8]($0) }))
    }

    // MARK: Mapping

    /// torch writes STORED, 64-byte aligned records: contiguous tensors are slices of the file.
    @Test func contiguousTensorsAreSlicesOfTheFile() throws {
        let path = Self.path("plain.bin")
        let file = try PyTorchFile(path: path)
        let bytes = try readBytes(path)
        #expect(file.mapsFiles)
        #expect(file.rootName == "plain" && file.byteOrder == .little && file.skippedEntries.isEmpty)
        #expect(file.tensors.count == 6)
        for t in file.tensors {
            #expect(file.isMapped(t.name), "\(t.name)")
            #expect(t.file == path)
            #expect(t.fileOffset % 64 == 0, "\(t.name) at \(t.fileOffset)")
            let ours = try file.withRawBytes(t.name) { [UInt8]($0) }
            #expect(ours == Array(bytes[t.fileOffset..<(t.fileOffset + t.byteCount)]), "\(t.name)")
        }
        // Storage order: by file offset.
        #expect(file.tensors.map(\.fileOffset) == file.tensors.map(\.fileOffset).sorted())
        file.releasePages("embed.weight")
    }

    @Test func sharedStoragesAndViews() throws {
        let file = try PyTorchFile(path: Self.path("views.bin"))
        #expect(!file.mapsFiles, "some views must be gathered")
        let embed = try file.info("embed.weight"), tied = try file.info("lm_head.weight")
        #expect(file.isMapped("embed.weight") && file.isMapped("lm_head.weight"))
        #expect(embed.fileOffset == tied.fileOffset && embed.byteCount == tied.byteCount, "tied names share bytes")
        let row1 = try file.info("row1")
        #expect(file.isMapped("row1") && row1.fileOffset == embed.fileOffset + 6 * 4)
        #expect(file.isMapped("half_tail"))
        for name in ["transposed", "cols", "block", "broadcast", "half_every_other"] {
            #expect(!file.isMapped(name), "\(name) is a strided view")
        }
        #expect(try file.info("transposed").shape == [6, 4])
        #expect(try file.info("broadcast").shape == [2, 3])
    }

    @Test func deflatedAndBigEndianArchivesAreGathered() throws {
        let deflated = try PyTorchFile(path: Self.path("deflated.bin"))
        #expect(!deflated.mapsFiles && deflated.tensors.allSatisfy { !deflated.isMapped($0.name) })
        let big = try PyTorchFile(path: Self.path("bigendian.bin"))
        #expect(big.byteOrder == .big)
        // Only one-byte elements need no swap.
        #expect(big.tensors.filter { big.isMapped($0.name) }.map(\.name).sorted() == ["bool", "u8"], "swapped tensors cannot be mapped")
    }

    @Test func rootNameIsArbitraryAndNestedStateDictsAreFound() throws {
        #expect(try PyTorchFile(path: Self.path("oldroot.bin")).rootName == "archive")
        let nested = try PyTorchFile(path: Self.path("nested.bin"))
        #expect(nested.tensors.map(\.name).sorted() == ["a.bias", "a.weight"])
        let params = try PyTorchFile(path: Self.path("params.bin"))
        #expect(params.skippedEntries.isEmpty)
        #expect(params.tensors.count == 7)
        let sharded = try ShardedPyTorch(folder: Self.path("sharded"))
        #expect(sharded.shards.count == 2 && sharded.mapsFiles)
        #expect(sharded.indexMetadata?["total_size"]?.intValue == sharded.tensors.reduce(0) { $0 + $1.byteCount })
        for t in sharded.tensors { #expect((t.file as NSString).lastPathComponent.hasPrefix("pytorch_model-0000")) }
    }

    // MARK: Refusals

    /// Each crafted or hostile file fails with the kind the manifest gives, naming the file.
    @Test func refusedFixturesFailWithTheirKind() throws {
        try? FileManager.default.removeItem(atPath: Self.pwned)
        let refused = try #require(try Self.manifest()["refused"]?.arrayValue)
        #expect(refused.count >= 20)
        for e in refused {
            let file = try #require(e["file"]?.stringValue)
            let kind = try #require(e["kind"]?.stringValue)
            let path = Self.path(file)
            do {
                _ = try PyTorchFile(path: path)
                Issue.record("\(file) was accepted; expected \(kind)")
            } catch let error as PyTorchError {
                #expect(error.kind == kind, "\(file): \(error)")
                #expect(error.description.contains(path), "\(file): the message names the file")
            }
        }
        #expect(!FileManager.default.fileExists(atPath: Self.pwned))
    }

    @Test func maliciousPicklesRunNothing() throws {
        try? FileManager.default.removeItem(atPath: Self.pwned)
        let global = Self.path("malicious_global.bin")
        #expect(throws: PyTorchError.forbiddenGlobal(file: global, module: "os", name: "system")) {
            try PyTorchFile(path: global)
        }
        // Pickle protocol 2 names Python 3's builtins module by its Python 2 name.
        let reduce = Self.path("malicious_reduce.bin")
        #expect(throws: PyTorchError.forbiddenGlobal(file: reduce, module: "__builtin__", name: "eval")) {
            try PyTorchFile(path: reduce)
        }
        let opcode = Self.path("malicious_opcode.bin")
        let entry = try #require(try Self.manifest()["refused"]?.arrayValue?.first { $0["file"]?.stringValue == "malicious_opcode.bin" })
        let offset = try #require(entry["offset"]?.intValue)
        #expect(throws: PyTorchError.forbiddenOpcode(file: opcode, opcode: 0x69, offset: offset)) {
            try PyTorchFile(path: opcode)
        }
        let legacy = Self.path("bad/legacy_malicious.bin")
        #expect(throws: PyTorchError.forbiddenGlobal(file: legacy, module: "__builtin__", name: "eval")) {
            try PyTorchFile(path: legacy)
        }
        #expect(!FileManager.default.fileExists(atPath: Self.pwned), "a payload ran")
        let message = PyTorchError.forbiddenGlobal(file: global, module: "os", name: "system").description
        #expect(message.contains("os.system") && message.contains(global))
        #expect(PyTorchError.forbiddenOpcode(file: opcode, opcode: 0x69, offset: offset).description.contains("INST"))
    }

    /// The pre-1.6 format: five pickles, then each storage as an int64 count and its elements.
    @Test func legacyFilesAreReadAndMapped() throws {
        let path = Self.path("legacy.bin")
        let file = try PyTorchFile(path: path)
        #expect(file.isLegacyFormat && file.rootName.isEmpty && file.mapsFiles)
        let bytes = try readBytes(path)
        let plain = try PyTorchFile(path: Self.path("plain.bin"))
        #expect(file.tensors.map(\.name) == plain.tensors.map(\.name))
        for t in file.tensors {
            // Each storage is preceded by its element count (little-endian int64).
            let count = (0..<8).reduce(0) { $0 | Int(bytes[t.fileOffset - 8 + $1]) << (8 * $1) }
            #expect(count == t.elementCount, "\(t.name)")
            #expect(try file.withRawBytes(t.name) { [UInt8]($0) } == Array(bytes[t.fileOffset..<(t.fileOffset + t.byteCount)]))
        }
        let bigEndian = Self.path("bad/legacy_bigendian.bin")
        #expect(throws: PyTorchError.legacyFormat(file: bigEndian, detail: "big-endian storages")) { try PyTorchFile(path: bigEndian) }
        #expect(PyTorchError.legacyFormat(file: path, detail: "x").description.contains("torch.save"))
    }

    @Test func storageShorterThanItsTensorIsATypedError() throws {
        let oob = Self.path("bad/oob_tensor.bin")
        #expect(pyTorchErrorKind { _ = try PyTorchFile(path: oob) } == "tensorOutOfBounds")
        let short = Self.path("bad/short_storage.bin")
        #expect(throws: PyTorchError.storageSizeMismatch(file: short, key: "0", declaredBytes: 64, recordBytes: 32)) {
            try PyTorchFile(path: short)
        }
    }

    // MARK: Broken zips

    /// A copy of plain.bin with `edit` applied, in a temporary folder.
    func editedPlain(_ edit: (inout [UInt8]) -> Void) throws -> (path: String, folder: String) {
        var bytes = try readBytes(Self.path("plain.bin"))
        edit(&bytes)
        let folder = try TestPaths.temporaryFolder()
        let path = (folder as NSString).appendingPathComponent("edited.bin")
        try writeBytes(bytes, to: path)
        return (path, folder)
    }

    static func u32(_ b: [UInt8], _ at: Int) -> Int { (0..<4).reduce(0) { $0 | Int(b[at + $1]) << (8 * $1) } }
    static func put32(_ b: inout [UInt8], _ at: Int, _ v: Int) { for i in 0..<4 { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
    static func put16(_ b: inout [UInt8], _ at: Int, _ v: Int) { for i in 0..<2 { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }

    @Test func truncatedFilesAreTypedErrors() throws {
        let full = try readBytes(Self.path("plain.bin"))
        let folder = try TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = (folder as NSString).appendingPathComponent("truncated.bin")
        var checked = 0
        for length in Array(stride(from: 0, to: full.count, by: 37)) + [full.count - 1, full.count - 22, 3, 4] {
            try writeBytes(Array(full[..<length]), to: path)
            let kind = pyTorchErrorKind { _ = try PyTorchFile(path: path) }
            #expect(kind == (length < 4 ? "notAZip" : "invalidZip"), "truncated to \(length): \(kind ?? "accepted")")
            checked += 1
        }
        #expect(checked > 50)
        // The legacy format has no directory: every cut must still be a typed error.
        let legacy = try readBytes(Self.path("legacy.bin"))
        for length in stride(from: 0, to: legacy.count, by: 5) {
            try writeBytes(Array(legacy[..<length]), to: path)
            let kind = pyTorchErrorKind { _ = try PyTorchFile(path: path) }
            #expect(kind.map { !$0.contains(":") } == true, "legacy truncated to \(length): \(kind ?? "accepted")")
        }
    }

    @Test func badCentralDirectoriesAreTypedErrors() throws {
        let plain = try readBytes(Self.path("plain.bin"))
        let eocd = plain.count - 22
        #expect(Self.u32(plain, eocd) == 0x0605_4b50)
        let cd = Self.u32(plain, eocd + 16)
        // torch writes a ZIP64 end record and its locator even for small files.
        let locator = eocd - 20
        #expect(Self.u32(plain, locator) == 0x0706_4b50)
        let record = Self.u32(plain, locator + 8)
        #expect(Self.u32(plain, record) == 0x0606_4b50)
        #expect(Self.u32(plain, record + 48) == cd)
        let firstLength = [28, 30, 32].reduce(46) { $0 + (Int(plain[cd + $1]) | Int(plain[cd + $1 + 1]) << 8) }
        let secondEntry = cd + firstLength
        var cases: [(String, (inout [UInt8]) -> Void)] = [
            ("bad central signature", { $0[cd] = 0 }),
            ("central directory past the end", { Self.put32(&$0, eocd + 16, plain.count) }),
            ("more entries than fit", { Self.put16(&$0, eocd + 8, 0xFFF0); Self.put16(&$0, eocd + 10, 0xFFF0) }),
            ("fewer entries than declared", { Self.put16(&$0, eocd + 8, 3); Self.put16(&$0, eocd + 10, 3); Self.put32(&$0, eocd + 12, 46 * 3) }),
            ("local header offset out of bounds", { Self.put32(&$0, cd + 42, plain.count - 10) }),
            ("local header offset into another entry", { Self.put32(&$0, secondEntry + 42, 0) }),
            ("compressed size past the directory", { Self.put32(&$0, cd + 20, plain.count); Self.put32(&$0, cd + 24, plain.count) }),
            ("multi-disk", { Self.put16(&$0, eocd + 4, 1) }),
            ("bad local signature", { $0[0] = 0x50; $0[1] = 0x4b; $0[2] = 9 }),
            ("ZIP64 directory offset past the end", { Self.put32(&$0, record + 48, plain.count); Self.put32(&$0, eocd + 16, 0xFFFF_FFFF) }),
            ("ZIP64 entry count too large", { Self.put32(&$0, record + 32, 1 << 30); Self.put32(&$0, record + 24, 1 << 30); Self.put16(&$0, eocd + 8, 0xFFFF); Self.put16(&$0, eocd + 10, 0xFFFF) }),
            ("ZIP64 offset above Int.max", { $0[record + 55] = 0x80; Self.put32(&$0, eocd + 16, 0xFFFF_FFFF) }),
            ("ZIP64 locator pointing nowhere", { Self.put32(&$0, locator + 8, 3) }),
            ("end records disagree", { Self.put32(&$0, record + 40, Self.u32($0, record + 40) - 1) }),
        ]
        cases.append(("name length past the directory", { Self.put16(&$0, cd + 28, 0xFFFF) }))
        for (what, edit) in cases {
            let (path, folder) = try editedPlain(edit)
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let kind = pyTorchErrorKind { _ = try PyTorchFile(path: path) }
            #expect(kind == "invalidZip", "\(what): \(kind ?? "accepted")")
        }
        // A CRC mismatch on data.pkl (first entry, STORED) is caught when it is read.
        let (path, folder) = try editedPlain { Self.put32(&$0, cd + 16, Self.u32($0, cd + 16) ^ 1) }
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect(pyTorchErrorKind { _ = try PyTorchFile(path: path) } == "corruptEntry")
    }

    /// Random byte flips anywhere in a file open or fail with a typed error; they never crash,
    /// and whatever opens reads back.
    @Test(arguments: ["plain.bin", "deflated.bin", "views.bin", "legacy.bin"])
    func corruptedFilesNeverCrash(_ fixture: String) throws {
        let original = try readBytes(Self.path(fixture))
        let folder = try TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = (folder as NSString).appendingPathComponent("fuzzed.bin")
        var rng = SplitMix64(seed: 0x70_7974_6f72_6368)
        var opened = 0, refused = 0
        for _ in 0..<600 {
            var bytes = original
            for _ in 0..<(1 + rng.int(3)) { bytes[rng.int(bytes.count)] ^= UInt8(1 + rng.int(255)) }
            try writeBytes(bytes, to: path)
            do {
                let file = try PyTorchFile(path: path)
                for t in file.tensors { _ = try file.withRawBytes(t.name) { $0.count } }
                opened += 1
            } catch is PyTorchError {
                refused += 1
            } catch let e as TensorStoreError {
                Issue.record("unexpected \(e)")
            }
        }
        #expect(opened + refused == 600 && refused > 0)
    }

    // MARK: Sharded folders

    func shardedCopy(editIndex edit: (inout [JSONMember]) -> Void) throws -> String {
        try TestPaths.shardedCopy(of: Self.path("sharded"), indexFileName: ShardedPyTorch.indexFileName, editIndex: edit)
    }

    @Test func staleShardIndexIsAnErrorNamingTheTensor() throws {
        let missing = try shardedCopy { $0.append(JSONMember("model.9.weight", .string("pytorch_model-00001-of-00002.bin"))) }
        defer { try? FileManager.default.removeItem(atPath: missing) }
        #expect(throws: PyTorchError.staleIndex(folder: missing, detail: "tensor 'model.9.weight' is listed in shard 'pytorch_model-00001-of-00002.bin' but no shard holds it")) {
            try ShardedPyTorch(folder: missing)
        }
        let unlisted = try shardedCopy { _ = $0.removeLast() }
        defer { try? FileManager.default.removeItem(atPath: unlisted) }
        #expect(pyTorchErrorKind { _ = try ShardedPyTorch(folder: unlisted) } == "staleIndex")
        let absent = try shardedCopy { $0[0].value = .string("pytorch_model-00009-of-00009.bin") }
        defer { try? FileManager.default.removeItem(atPath: absent) }
        #expect(pyTorchErrorKind { _ = try ShardedPyTorch(folder: absent) } == "staleIndex")
        let escape = try shardedCopy { $0[0].value = .string("../pytorch_model.bin") }
        defer { try? FileManager.default.removeItem(atPath: escape) }
        #expect(pyTorchErrorKind { _ = try ShardedPyTorch(folder: escape) } == "invalidIndex")
        let empty = try shardedCopy { $0.removeAll() }
        defer { try? FileManager.default.removeItem(atPath: empty) }
        #expect(pyTorchErrorKind { _ = try ShardedPyTorch(folder: empty) } == "invalidIndex")
    }

    @Test func singleFileFolderAndEmptyFolder() throws {
        let folder = try TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect(throws: PyTorchError.noCheckpoint(folder: folder)) { try ShardedPyTorch(folder: folder) }
        try FileManager.default.copyItem(atPath: Self.path("plain.bin"),
                                         toPath: (folder as NSString).appendingPathComponent(ShardedPyTorch.singleFileName))
        let store = try ShardedPyTorch(folder: folder)
        #expect(store.tensors.count == 6 && store.mapsFiles && store.isMapped("embed.weight"))
        #expect(try store.readF32("scale") == [2.5])
    }

    // MARK: The unpickler on hand-written pickles

    func unpickle(_ bytes: [UInt8]) throws -> PickleValue {
        try bytes.withUnsafeBytes { try Unpickler(file: "test.pkl").load($0) }
    }

    func kind(_ bytes: [UInt8]) -> String? { pyTorchErrorKind { _ = try unpickle(bytes) } }

    static func ascii(_ s: String) -> [UInt8] { Array(s.utf8) }

    @Test func everyOpcodeOutsideTheAllowlistIsRefusedAtItsOffset() throws {
        let allowed: Set<UInt8> = [0x80, 0x2e, 0x63, 0x52, 0x81, 0x62, 0x28, 0x74, 0x85, 0x86, 0x87, 0x29, 0x5d, 0x7d, 0x8f,
                                   0x61, 0x65, 0x73, 0x75, 0x4e, 0x88, 0x89, 0x4a, 0x4b, 0x4d, 0x8a, 0x47, 0x58, 0x55,
                                   0x51, 0x68, 0x6a, 0x71, 0x72]
        var refused = 0
        for op in UInt8.min...UInt8.max where !allowed.contains(op) {
            #expect(throws: PyTorchError.forbiddenOpcode(file: "test.pkl", opcode: op, offset: 3)) {
                try unpickle([0x80, 0x02, 0x4e, op, 0x2e])
            }
            refused += 1
        }
        #expect(refused == 256 - allowed.count)
        let names: [(UInt8, String)] = [(0x69, "INST"), (0x95, "FRAME"), (0x93, "STACK_GLOBAL"), (0x82, "EXT1"), (0x42, "BINBYTES")]
        for (op, name) in names { #expect(PickleOpcode.name(op) == name) }
    }

    @Test func forbiddenGlobalsAreRefusedAtTheGlobal() throws {
        for (module, name) in [("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"),
                               ("subprocess", "Popen"), ("torch", "load"), ("torch._utils", "_rebuild_qtensor"),
                               ("torch", "device"), ("__builtin__", "getattr"), ("torch.storage", "_load_from_bytes")] {
            // The global comes after a well-formed prefix and before anything that uses it.
            let bytes = [0x80, 0x02, 0x4e] + Self.ascii("c\(module)\n\(name)\n") + [0x29, 0x52, 0x2e]
            #expect(throws: PyTorchError.forbiddenGlobal(file: "test.pkl", module: module, name: name)) { try unpickle(bytes) }
        }
    }

    @Test func allowlistedValuesCannotBeCalled() throws {
        for global in ["torch\nFloatStorage", "torch\nfloat32", "torch\nTensor", "torch.storage\nUntypedStorage"] {
            #expect(kind([0x80, 0x02] + Self.ascii("c\(global)\n") + [0x29, 0x52, 0x2e]) == "forbiddenCall", "\(global)")
        }
        // REDUCE on something that is not a global at all.
        #expect(kind([0x80, 0x02, 0x4e, 0x29, 0x52, 0x2e]) == "forbiddenCall")
        // OrderedDict with arguments; a rebuild with the wrong arguments.
        #expect(kind([0x80, 0x02] + Self.ascii("ccollections\nOrderedDict\n") + [0x4b, 0x01, 0x85, 0x52, 0x2e]) == "forbiddenCall")
        #expect(kind([0x80, 0x02] + Self.ascii("ctorch._utils\n_rebuild_tensor_v2\n") + [0x4b, 0x01, 0x85, 0x52, 0x2e]) == "forbiddenCall")
        // BINPERSID with anything but a ('storage', ...) tuple.
        #expect(kind([0x80, 0x02, 0x58, 0x04, 0, 0, 0] + Self.ascii("evil") + [0x85, 0x51, 0x2e]) == "forbiddenCall")
        #expect(kind([0x80, 0x02, 0x4b, 0x07, 0x51, 0x2e]) == "forbiddenCall")
        // NEWOBJ of anything but Parameter; BUILD on anything but a dict.
        #expect(kind([0x80, 0x02] + Self.ascii("ctorch\nTensor\n") + [0x29, 0x81, 0x2e]) == "forbiddenCall")
        #expect(kind([0x80, 0x02, 0x5d, 0x7d, 0x62, 0x2e]) == "forbiddenCall")
    }

    @Test func malformedPicklesAreTypedErrors() throws {
        #expect(kind([]) == "invalidPickle")
        #expect(kind([0x80, 0x02]) == "invalidPickle", "no STOP")
        #expect(kind([0x80, 0x02, 0x2e]) == "invalidPickle", "STOP on an empty stack")
        #expect(kind([0x80, 0x02, 0x74, 0x2e]) == "invalidPickle", "TUPLE without MARK")
        #expect(kind([0x80, 0x02, 0x4e, 0x28, 0x85, 0x2e]) == "invalidPickle", "TUPLE1 cannot reach below a MARK")
        #expect(kind([0x80, 0x02, 0x68, 0x05, 0x2e]) == "invalidPickle", "memo entry never stored")
        #expect(kind([0x80, 0x02, 0x58, 0xff, 0xff, 0xff, 0xff, 0x61, 0x2e]) == "invalidPickle", "string past the end")
        #expect(kind([0x80, 0x02, 0x58, 0x02, 0, 0, 0, 0xc3, 0x28, 0x2e]) == "invalidPickle", "invalid UTF-8")
        #expect(kind([0x80, 0x02, 0x8a, 0x09] + [UInt8](repeating: 1, count: 9) + [0x2e]) == "invalidPickle", "LONG1 over 64 bits")
        #expect(kind([0x80, 0x02] + Self.ascii("c" + String(repeating: "a", count: 300)) + [0x2e]) == "invalidPickle", "endless GLOBAL name")
        #expect(kind([0x80, 0x02, 0x7d, 0x4e, 0x61, 0x2e]) == "invalidPickle", "APPEND to a dict")
        #expect(kind([0x80, 0x02, 0x5d, 0x4e, 0x4e, 0x73, 0x2e]) == "invalidPickle", "SETITEM on a list")
        // A list appended to itself (a cycle) and a dict mutated after nesting are refused.
        #expect(kind([0x80, 0x02, 0x5d, 0x71, 0x00, 0x68, 0x00, 0x61, 0x2e]) == "invalidPickle")
        #expect(kind([0x80, 0x02, 0x7d, 0x71, 0x00, 0x85, 0x68, 0x00, 0x4e, 0x4e, 0x73, 0x2e]) == "invalidPickle")
    }

    /// A million nested tuples must be refused, not overflow the stack when released.
    @Test func deepNestingIsBounded() throws {
        var deep: [UInt8] = [0x80, 0x02, 0x29]
        deep += [UInt8](repeating: 0x85, count: 1_000_000)
        deep.append(0x2e)
        #expect(kind(deep) == "invalidPickle")
        var ok: [UInt8] = [0x80, 0x02, 0x29]
        ok += [UInt8](repeating: 0x85, count: Unpickler.maxDepth - 1)
        ok.append(0x2e)
        #expect(kind(ok) == nil)
        var marks: [UInt8] = [0x80, 0x02]
        marks += [UInt8](repeating: 0x28, count: 100_000)
        #expect(kind(marks) == "invalidPickle")
    }

    @Test func scalarsDecodeLikePython() throws {
        func int(_ bytes: [UInt8]) throws -> Int? {
            if case .int(let i) = try unpickle([0x80, 0x02] + bytes + [0x2e]) { return i } else { return nil }
        }
        #expect(try int([0x4b, 0xff]) == 255)
        #expect(try int([0x4d, 0x34, 0x12]) == 0x1234)
        #expect(try int([0x4a, 0xff, 0xff, 0xff, 0xff]) == -1)
        #expect(try int([0x8a, 0x00]) == 0)
        #expect(try int([0x8a, 0x01, 0xff]) == -1)
        #expect(try int([0x8a, 0x02, 0x00, 0x80]) == -32768)
        #expect(try int([0x8a, 0x05, 0, 0, 0, 0, 0x01]) == 1 << 32)
        #expect(try int([0x8a, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x80]) == Int.min)
        let float = try unpickle([0x80, 0x02, 0x47, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0x2e])
        #expect(float.kindName == "float")
        if case .float(let f) = float { #expect(f == 1.5) }
        // {'a': [1, True, None, 'é']} with a memo reference, as protocol 2 writes it.
        let bytes: [UInt8] = [0x80, 0x02, 0x7d, 0x71, 0x00, 0x55, 0x01, 0x61, 0x5d, 0x71, 0x01, 0x28, 0x4b, 0x01, 0x88, 0x4e,
                              0x58, 0x02, 0, 0, 0, 0xc3, 0xa9, 0x65, 0x73, 0x2e]
        let value = try unpickle(bytes)
        #expect(value.kindName == "dict of 1")
        var items: [String] = []
        if case .dict(let d) = value, case .list(let l)? = d["a"] { items = l.items.map(\.kindName) }
        #expect(items == ["int 1", "bool", "None", "string 'é'"])
    }
}
