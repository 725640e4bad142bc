import Foundation
import Testing
@testable import Checkpoints

/// Our writer and reader against each other, and the byte layout against the spec's rules.
@Suite struct GGUFRoundTripTests {
    static let metadata: [GGUFKeyValue] = [
        GGUFKeyValue("general.architecture", .string("llama")),
        GGUFKeyValue("test.u8", .uint8(255)), GGUFKeyValue("test.i8", .int8(-128)),
        GGUFKeyValue("test.u16", .uint16(65535)), GGUFKeyValue("test.i16", .int16(-32768)),
        GGUFKeyValue("test.u32", .uint32(.max)), GGUFKeyValue("test.i32", .int32(.min)),
        GGUFKeyValue("test.f32", .float32(0.1)), GGUFKeyValue("test.bool", .bool(true)),
        GGUFKeyValue("test.str", .string("é😀\n\"")), GGUFKeyValue("test.u64", .uint64(.max)),
        GGUFKeyValue("test.i64", .int64(.min)), GGUFKeyValue("test.f64", .float64(-1e-300)),
        GGUFKeyValue("test.bytes", .bytes([0xFF, 0xFE, 0x41])),
        GGUFKeyValue("test.arr.str", .array(.string, [.string("a"), .string(""), .string("ü")])),
        GGUFKeyValue("test.arr.i32", .array(.int32, [.int32(1), .int32(-2)])),
        GGUFKeyValue("test.arr.empty", .array(.float32, [])),
    ]

    func tensor(_ name: String, _ type: GGMLType, _ shape: [Int], seed: UInt8) -> OutputTensor {
        let bytes = shape.reduce(1, *) / type.blockElements * type.blockBytes
        let data = (0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
        return OutputTensor(name: name, type: TensorType(ggml: type), shape: shape, byteCount: bytes) { sink in try data.withUnsafeBytes { try sink($0) } }
    }

    @Test func writesWhatItReads() throws {
        let dir = try TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/m.gguf"
        let tensors = [tensor("a", .f32, [3, 5], seed: 1), tensor("blk.0.attn_q.weight", .q4_K, [2, 512], seed: 2),
                       tensor("c", .q8_0, [64], seed: 3), tensor("d", .i16, [7], seed: 4)]
        try GGUFWriter.write(metadata: Self.metadata, tensors: tensors, to: path)
        let file = try GGUFFile(path: path)
        #expect(file.header.version == 3 && file.header.alignment == 32)
        #expect(file.metadata == Self.metadata)
        #expect(file.tensors.map(\.name) == tensors.map(\.name))
        #expect(file.tensors.map(\.shape) == [[3, 5], [2, 512], [64], [7]])
        #expect(file.entry("blk.0.attn_q.weight")?.ne == [512, 2])
        #expect(file.tensors[1].type == .quantized(.q4_K) && file.tensors[0].type == .plain(.f32))
        for t in tensors {
            var expected: [UInt8] = []
            try t.produce { expected += Array($0) }
            #expect(try file.withRawBytes(t.name, Array.init) == expected, "\(t.name)")
        }
        // Layout: data start and every tensor aligned, last tensor padded, offsets contiguous.
        #expect(file.header.dataStart % 32 == 0)
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        let last = try #require(file.parts[0].tensors.last)
        #expect(size == file.header.dataStart + GGUFHeader.alignUp(last.offset + last.byteCount, 32))
        for t in file.parts[0].tensors { #expect(t.offset % 32 == 0) }
    }

    @Test func honoursGeneralAlignment() throws {
        let dir = try TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/a.gguf"
        let meta = [GGUFKeyValue("general.alignment", .uint32(64))]
        try GGUFWriter.write(metadata: meta, tensors: [tensor("x", .f16, [5], seed: 0), tensor("y", .f32, [3], seed: 1)], to: path)
        let file = try GGUFFile(path: path)
        #expect(file.header.alignment == 64 && file.header.dataStart % 64 == 0)
        #expect(file.parts[0].tensors[1].offset == 64)
    }

    @Test func splitsAndReopensAsOneModel() throws {
        let dir = try TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/s.gguf"
        let tensors = (0..<5).map { tensor("t\($0)", .q8_0, [4, 64], seed: UInt8($0)) }  // 272 bytes each
        try GGUFWriter.write(metadata: Self.metadata, tensors: tensors, to: path, maxShardBytes: 600)
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        #expect(names == ["s-00001-of-00003.gguf", "s-00002-of-00003.gguf", "s-00003-of-00003.gguf", "s.gguf.sha256"])
        let model = try GGUFFile(path: dir + "/s-00001-of-00003.gguf")
        #expect(model.parts.count == 3 && model.tensors.map(\.name) == tensors.map(\.name))
        #expect(model.metadata == Self.metadata)
        #expect(model.parts[1].metadata.map(\.key) == ["split.no", "split.count", "split.tensors.count"])
        #expect(model.parts[0].metadata[GGUF.Key.splitTensorCount] == .int32(5))
        #expect(throws: GGUFError.self) { try GGUFFile(path: dir + "/s-00002-of-00003.gguf") }
        try FileManager.default.removeItem(atPath: dir + "/s-00003-of-00003.gguf")
        #expect(throws: FileError.self) { try GGUFFile(path: dir + "/s-00001-of-00003.gguf") }
    }

    /// gguf-py records a custom alignment in the first part only; ours is in every part, so
    /// every part reads back.
    @Test func splitsWithACustomAlignment() throws {
        let dir = try TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let meta = [GGUFKeyValue("general.architecture", .string("llama")), GGUFKeyValue("general.alignment", .uint32(64))]
        let tensors = (0..<3).map { tensor("t\($0)", .f32, [37], seed: UInt8($0)) }
        try GGUFWriter.write(metadata: meta, tensors: tensors, to: dir + "/a.gguf", maxShardBytes: 150)
        let model = try GGUFFile(path: dir + "/a-00001-of-00003.gguf")
        #expect(model.parts.allSatisfy { $0.alignment == 64 })
        #expect(model.parts[2].metadata.map(\.key) == ["general.alignment", "split.no", "split.count", "split.tensors.count"])
        for t in tensors {
            var expected: [UInt8] = []
            try t.produce { expected += Array($0) }
            #expect(try model.withRawBytes(t.name, Array.init) == expected)
        }
    }

    @Test func refusesWhatLlamaCppWouldRefuse() throws {
        let dir = try TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let long = String(repeating: "x", count: 64)
        let cases: [([GGUFKeyValue], [OutputTensor])] = [
            ([GGUFKeyValue("k", .uint8(1)), GGUFKeyValue("k", .uint8(2))], []),
            ([GGUFKeyValue("", .uint8(1))], []),
            ([GGUFKeyValue("general.alignment", .uint32(48))], []),
            ([GGUFKeyValue("k", .array(.array, [.array(.uint8, [])]))], []),
            ([], [tensor(long, .f32, [1], seed: 0)]),
            ([], [tensor("a", .f32, [1], seed: 0), tensor("a", .f32, [1], seed: 0)]),
            ([], [OutputTensor(name: "q", type: .quantized(.q4_0), shape: [48], byteCount: 27) { _ in }]),
        ]
        for (meta, tensors) in cases {
            #expect(throws: GGUFWriterError.self) { try GGUFWriter.write(metadata: meta, tensors: tensors, to: dir + "/x.gguf") }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
    }
}
