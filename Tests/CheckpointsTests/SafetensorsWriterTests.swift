import Foundation
import Testing
@testable import Checkpoints

@Suite struct SafetensorsWriterTests {
    /// Every tensor of a store, streamed unchanged.
    func passthrough(_ store: any TensorStore) throws -> [OutputTensor] {
        try store.tensors.map { try TensorRetyping.output($0, from: store, target: nil) }
    }

    /// Reading the reference writer's file and writing it back gives the same bytes: order,
    /// header JSON, padding and offsets are the reference writer's.
    @Test func rewritingAReferenceFileIsByteIdentical() throws {
        let source = try SafetensorsFile(path: SafetensorsReaderTests.dtypesPath)
        let folder = try TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let out = (folder as NSString).appendingPathComponent("copy.safetensors")
        let metadata = Dictionary(uniqueKeysWithValues: source.metadata.map { ($0.key, $0.value) })
        // Shuffle the input order: the writer must sort as the reference does.
        try SafetensorsWriter.write(try passthrough(source).reversed(), metadata: metadata, to: out)
        #expect(try readBytes(out) == readBytes(SafetensorsReaderTests.dtypesPath))
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).sorted() == ["copy.safetensors", "copy.safetensors.sha256"])
    }

    @Test func headerOfTheCrateTestVector() {
        // safetensors tensor.rs `test_serialization`: attn.0, F32 [1,2,3], no metadata → N = 64.
        let t = OutputTensor.inMemory(name: "attn.0", dtype: .f32, shape: [1, 2, 3], bytes: [UInt8](repeating: 0, count: 24))
        let header = SafetensorsWriter.header(for: [t], metadata: [:])
        let text = String(decoding: header[8...], as: UTF8.self)
        #expect(text == #"{"__metadata__":{},"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}"# + "      ")
        #expect(header.count % 8 == 0)
    }

    @Test func shardPlanFollowsHuggingFaceHub() {
        func t(_ name: String, _ bytes: Int) -> OutputTensor {
            .inMemory(name: name, dtype: .u8, shape: [bytes], bytes: [UInt8](repeating: 0, count: bytes))
        }
        let plan = SafetensorsWriter.planShards([t("a", 40), t("b", 50), t("c", 30), t("big", 150), t("d", 100), t("e", 1)], maxShardBytes: 100)
        #expect(plan.map { $0.map(\.name) } == [["a", "b"], ["big"], ["c"], ["d"], ["e"]])
        #expect(SafetensorsWriter.planShards([t("a", 1)], maxShardBytes: nil).count == 1)
        #expect(SafetensorsWriter.shardName(1, of: 12) == "model-00002-of-00012.safetensors")
        #expect(SafetensorsWriter.shardName(0, of: 1) == "model.safetensors")
    }

    @Test func shardedFolderRoundTrips() throws {
        let source = try ShardedSafetensors(folder: TestPaths.fixture("safetensors/sharded"))
        let parent = try TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let out = (parent as NSString).appendingPathComponent("resharded")
        var progressCalls = 0
        try SafetensorsWriter.writeFolder(try passthrough(source), metadata: ["format": "pt"], to: out, maxShardBytes: 20_000,
                                          extraFiles: { [("config.json", Array("{}\n".utf8))] },
                                          progress: { _, _ in progressCalls += 1 })
        let copy = try ShardedSafetensors(folder: out)
        #expect(copy.shards.count > 3)
        #expect(progressCalls == source.tensors.count)
        for t in source.tensors {
            #expect(try copy.readF32(t.name) == source.readF32(t.name), "\(t.name)")
        }
        for shard in copy.shards {
            #expect(shard.metadata.first { $0.key == "format" }?.value == "pt")
            let bytes = shard.tensors.reduce(0) { $0 + $1.byteCount }
            #expect(bytes <= 20_000 || shard.tensors.count == 1)
        }
        let index = try JSONReader.parse(try readBytes((out as NSString).appendingPathComponent(ShardedSafetensors.indexFileName)))
        #expect(index["metadata"]?["total_size"]?.intValue == source.tensors.reduce(0) { $0 + $1.byteCount })
        #expect(index["metadata"]?["total_parameters"]?.intValue == source.tensors.reduce(0) { $0 + $1.elementCount })
        #expect(try readBytes((out as NSString).appendingPathComponent("config.json")) == Array("{}\n".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent) == ["resharded"])
    }

    @Test func retypingRoundsEachFloatAndCopiesIntegers() throws {
        let source = try SafetensorsFile(path: SafetensorsReaderTests.dtypesPath)
        let folder = try TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let out = (folder as NSString).appendingPathComponent("bf16.safetensors")
        let decodable = source.tensors.filter { $0.dtype?.isDecodable == true }
        try SafetensorsWriter.write(try decodable.map { try TensorRetyping.output($0, from: source, target: .bf16) }, metadata: ["format": "pt"], to: out)
        let result = try SafetensorsFile(path: out)
        for t in decodable {
            let r = try result.info(t.name)
            if t.dtype?.isFloat == true {
                #expect(r.dtype == .bf16, "\(t.name)")
                let expected = try source.readF32(t.name).map { ElementConversion.bf16ToF32(ElementConversion.f32ToBF16($0)) }
                #expect(try result.readF32(t.name).sameBits(as: expected), "\(t.name)")
            } else {
                #expect(r.dtype == t.dtype, "\(t.name)")
                #expect(try result.withRawBytes(t.name, Array.init) == source.withRawBytes(t.name, Array.init), "\(t.name)")
            }
        }
    }

    struct Boom: Error {}

    @Test func aFailedWriteLeavesNothingBehind() throws {
        let folder = try TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let good = OutputTensor.inMemory(name: "a", dtype: .f32, shape: [2], bytes: [UInt8](repeating: 1, count: 8))
        let bad = OutputTensor(name: "b", dtype: .f32, shape: [1 << 20], byteCount: 4 << 20) { sink in
            let chunk = [UInt8](repeating: 0, count: 1 << 20)
            try chunk.withUnsafeBytes { try sink($0) }
            throw Boom()
        }
        let file = (folder as NSString).appendingPathComponent("x.safetensors")
        #expect(throws: Boom.self) { try SafetensorsWriter.write([good, bad], metadata: [:], to: file) }
        let dir = (folder as NSString).appendingPathComponent("out")
        #expect(throws: Boom.self) { try SafetensorsWriter.writeFolder([good, bad], metadata: [:], to: dir, maxShardBytes: 10) }
        let short = OutputTensor(name: "c", dtype: .f32, shape: [4], byteCount: 16) { sink in
            try [UInt8](repeating: 0, count: 8).withUnsafeBytes { try sink($0) }
        }
        #expect(throws: WriterError.self) { try SafetensorsWriter.write([short], metadata: [:], to: file) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).isEmpty)
    }

    @Test func existingOutputsAreNeverReplaced() throws {
        let folder = try TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = (folder as NSString).appendingPathComponent("keep.safetensors")
        try writeBytes([1, 2, 3], to: file)
        let t = OutputTensor.inMemory(name: "a", dtype: .u8, shape: [1], bytes: [7])
        #expect(throws: FileError.outputExists(path: file)) { try SafetensorsWriter.write([t], metadata: [:], to: file) }
        #expect(try readBytes(file) == [1, 2, 3])
        #expect(throws: FileError.self) { try SafetensorsWriter.write([t], metadata: [:], to: folder + "/no/such/dir/x.safetensors") }
        #expect(throws: WriterError.duplicateName(path: folder + "/d", name: "a")) {
            try SafetensorsWriter.writeFolder([t, t], metadata: [:], to: folder + "/d", maxShardBytes: nil)
        }
        // A symbolic link at the output path, even a dangling one, is refused and left as it was
        // (the rename would have replaced the link with the output, silently).
        let link = folder + "/link.safetensors", folderLink = folder + "/link-folder"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "/nonexistent/x")
        try FileManager.default.createSymbolicLink(atPath: folderLink, withDestinationPath: "/nonexistent/y")
        #expect(throws: FileError.outputIsLink(path: link, target: "/nonexistent/x")) { try SafetensorsWriter.write([t], metadata: [:], to: link) }
        #expect(throws: FileError.outputIsLink(path: folderLink, target: "/nonexistent/y")) {
            try SafetensorsWriter.writeFolder([t], metadata: [:], to: folderLink, maxShardBytes: nil)
        }
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == "/nonexistent/x")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: folderLink) == "/nonexistent/y")
        #expect(!FileManager.default.fileExists(atPath: link + ".sha256"))
        // An empty existing folder is fine: it is replaced by the finished output.
        let empty = (folder as NSString).appendingPathComponent("empty")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: false)
        try SafetensorsWriter.writeFolder([t], metadata: [:], to: empty, maxShardBytes: nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: empty).sorted() == ["SHA256SUMS", "model.safetensors"])
    }
}

/// A writer killed with SIGKILL leaves its hidden temporary; the next output to the same path
/// removes it, while a live writer's temporary is left alone (issue 13).
@Suite struct StalePartialTests {
    @Test func staleTemporariesOfDeadWritersAreRemoved() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nopekit-stale-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let finished = Process()
        finished.executableURL = URL(fileURLWithPath: "/bin/true")
        try finished.run()
        finished.waitUntilExit()
        let dead = dir + "/.out.nopekit-partial-\(finished.processIdentifier)"
        let live = dir + "/.out.nopekit-partial-\(getppid())"
        let other = dir + "/.other.nopekit-partial-\(finished.processIdentifier)"
        for p in [dead, live, other] {
            try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
            try Data("partial".utf8).write(to: URL(fileURLWithPath: p + "/model.safetensors"))
        }
        let output = try AtomicOutput(finalPath: dir + "/out", kind: .directory)
        #expect(!FileManager.default.fileExists(atPath: dead), "the dead writer's temporary stays")
        #expect(FileManager.default.fileExists(atPath: live), "a live writer's temporary was removed")
        #expect(FileManager.default.fileExists(atPath: other), "another output's temporary was touched")
        output.discard()
    }
}
