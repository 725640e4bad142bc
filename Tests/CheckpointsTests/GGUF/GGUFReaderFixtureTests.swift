import Foundation
import Testing
@testable import Checkpoints

/// Our reader against files written by PyPI `gguf` (scripts/reference/make_gguf_fixtures.py)
/// and against hand-built broken files.
@Suite struct GGUFReaderFixtureTests {
    static func manifest(_ relative: String) throws -> JSONValue {
        try JSONReader.parse(try readBytes(TestPaths.fixture(relative)))
    }

    /// `0x…` of `byteWidth` little-endian bytes.
    static func hex(_ raw: UnsafeRawBufferPointer, _ offset: Int, _ byteWidth: Int) -> String {
        var v: UInt64 = 0
        for i in stride(from: byteWidth - 1, through: 0, by: -1) { v = v << 8 | UInt64(raw[offset + i]) }
        let digits = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: 2 * byteWidth - digits.count) + digits
    }

    /// Checks one metadata value against gguf-py's record of it; returns a mismatch or nil.
    static func mismatch(_ value: GGUFValue, _ expected: JSONValue) -> String? {
        func scalar(_ v: GGUFValue, _ e: JSONValue, bits: JSONValue?, text: JSONValue?) -> Bool {
            switch v {
            case .float32(let f): return bits?.stringValue == String(format: "0x%08x", f.bitPattern)
            case .float64(let f): return bits?.stringValue == "0x" + { let h = String(f.bitPattern, radix: 16); return String(repeating: "0", count: 16 - h.count) + h }()
            case .string(let s): return e.stringValue == s
            case .bool(let b): return e.boolValue == b
            case .uint64(let u): return (text?.stringValue ?? { if case .number(let t) = e { return t } else { return nil } }()) == String(u)
            case .int64(let i): return (text?.stringValue ?? { if case .number(let t) = e { return t } else { return nil } }()) == String(i)
            default: return e.intValue == v.intValue
            }
        }
        if case .array(let items) = value {
            let ev = expected
            guard ev["element_type"]?.stringValue == items.elementType.description, let values = ev["values"]?.arrayValue,
                  values.count == items.count else { return "array header differs" }
            let bits = ev["bits"]?.arrayValue, texts = ev["values_str"]?.arrayValue
            for (i, item) in items.enumerated() where !scalar(item, values[i], bits: bits?[i], text: texts?[i]) {
                return "element \(i): \(item) vs \(values[i])"
            }
            return nil
        }
        return nil
    }

    static func checkFile(_ path: String, expected e: JSONValue) throws {
        let file = try GGUFFile(path: path)
        let h = file.header
        #expect(Int(h.version) == e["version"]?.intValue, "\(path)")
        #expect(h.alignment == e["alignment"]?.intValue)
        #expect(h.dataStart == e["data_offset"]?.intValue || file.tensors.isEmpty)
        let meta = e["metadata"]?.arrayValue ?? []
        #expect(h.metadata.count == meta.count, "\(path): metadata count")
        for (kv, m) in zip(h.metadata, meta) {
            #expect(kv.key == m["key"]?.stringValue)
            #expect(kv.value.type.description == m["type"]?.stringValue, "\(kv.key)")
            let v = m["value"] ?? .null
            if case .array = kv.value {
                #expect(mismatch(kv.value, v) == nil, "\(kv.key): \(mismatch(kv.value, v) ?? "")")
            } else {
                let ok = mismatch(.array(kv.value.type, [kv.value]),
                                  .object([JSONMember("element_type", .string(kv.value.type.description)), JSONMember("values", .array([v])),
                                           JSONMember("bits", .array([m["bits"] ?? .null])), JSONMember("values_str", .array([m["value_str"] ?? .null]))]))
                #expect(ok == nil, "\(kv.key): \(ok ?? "")")
            }
        }
        let tensors = e["tensors"]?.arrayValue ?? []
        #expect(file.tensors.count == tensors.count)
        for t in tensors {
            let name = try #require(t["name"]?.stringValue)
            let info = try file.info(name)
            let entry = try #require(file.entry(name))
            #expect(entry.type.name == t["type"]?.stringValue, "\(name)")
            #expect(info.shape == t["shape"]?.arrayValue?.compactMap(\.intValue), "\(name)")
            #expect(entry.ne == t["ne"]?.arrayValue?.compactMap(\.intValue), "\(name)")
            #expect(entry.offset == t["offset"]?.intValue && info.byteCount == t["nbytes"]?.intValue, "\(name)")
            if let bits = t["bits"]?.arrayValue {
                let width = entry.type.blockBytes
                let ours = try file.withRawBytes(name) { raw in (0..<(raw.count / width)).map { hex(raw, $0 * width, width) } }
                #expect(ours == bits.compactMap(\.stringValue), "\(name)")
            } else if let values = t["values"]?.arrayValue {
                let ours = try file.withRawBytes(name) { raw -> [String] in
                    let w = entry.type.blockBytes
                    return (0..<(raw.count / w)).map { i in
                        switch w {
                        case 1: return String(raw.load(fromByteOffset: i, as: Int8.self))
                        case 2: return String(raw.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))
                        case 4: return String(raw.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))
                        default: return String(raw.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))
                        }
                    }
                }
                #expect(ours == values.map { v -> String in if case .number(let s) = v { return s } else { return "?" } }, "\(name)")
            }
        }
    }

    @Test(arguments: ["values", "v2", "aligned64", "empty"])
    func readsWhatGGUFPyWrote(_ name: String) throws {
        try Self.checkFile(TestPaths.fixture("gguf/\(name).gguf"), expected: try Self.manifest("gguf/\(name).expected.json"))
    }

    @Test func readsValidEdgeFiles() throws {
        let entries = try #require(try Self.manifest("gguf/valid_edge/manifest.json").arrayValue)
        #expect(entries.count >= 8)
        for e in entries {
            let name = try #require(e["file"]?.stringValue)
            try Self.checkFile(TestPaths.fixture("gguf/valid_edge/\(name)"), expected: e["expected"] ?? .null)
        }
    }

    @Test func everyMalformedFileIsRejectedWithItsKind() throws {
        let entries = try #require(try Self.manifest("gguf/malformed/manifest.json").arrayValue)
        #expect(entries.count >= 30)
        var kinds = Set<String>()
        for e in entries {
            let name = try #require(e["file"]?.stringValue)
            let kind = try #require(e["kind"]?.stringValue)
            kinds.insert(kind)
            let path = TestPaths.fixture("gguf/malformed/\(name)")
            do {
                _ = try GGUFFile(path: path)
                Issue.record("\(name) was accepted; expected \(kind)")
            } catch let error as GGUFError {
                #expect(error.kind == kind, "\(name): \(error)")
                #expect(error.description.contains(path), "\(name): the message names the file")
            }
        }
        #expect(kinds.count >= 20)
    }

    /// Dequantised values equal gguf.quants.dequantize bit for bit; quantised bytes equal
    /// gguf.quants.quantize for the types both implement.
    @Test func quantsMatchGGUFPy() throws {
        let file = try GGUFFile(path: TestPaths.fixture("gguf/quants.gguf"))
        let e = try Self.manifest("gguf/quants.expected.json")
        let input = try file.readF32("input")
        #expect(input.count == 16 * 256)
        var quantizedChecked = 0, dequantizedChecked = 0
        for name in e["quantize_and_dequantize"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
            let type = try #require(GGMLType(name: name))
            let stored = try file.withRawBytes("q.\(name)", Array.init)
            if Quantizers.supported.contains(type) {
                let ours = try Quantizers.quantize(input, as: type)
                let firstDiff = ours.indices.first { $0 < stored.count && ours[$0] != stored[$0] }
                #expect(ours == stored, "\(name): first differing byte \(firstDiff.map(String.init) ?? "-") (block \(firstDiff.map { $0 / type.blockBytes } ?? -1))")
                quantizedChecked += 1
            }
            #expect(try file.readF32("q.\(name)").sameBits(as: file.readF32("dq.\(name)")), "\(name) dequantize")
            dequantizedChecked += 1
        }
        for name in e["dequantize_only"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
            let ours = try file.readF32("r.\(name)"), reference = try file.readF32("dr.\(name)")
            let bad = zip(ours, reference).filter { $0.bitPattern != $1.bitPattern && !($0.isNaN && $1.isNaN) }.count
            #expect(bad == 0, "\(name): \(bad) of \(ours.count) values differ")
            dequantizedChecked += 1
        }
        #expect(quantizedChecked == 8)  // F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, MXFP4
        #expect(dequantizedChecked >= 25)
    }
}

/// Found by FuzzGGUF: a tensor with ne = [0, 2^40, 2^40] passes the reader's overflow check
/// (multiplied in file order, the zero comes first) but its HF-order shape [2^40, 2^40, 0]
/// trapped on overflow wherever the element count was taken. It has no elements.
@Suite struct ZeroSizedTensorTests {
    @Test func aZeroDimensionMakesAnEmptyTensorInAnyOrder() throws {
        func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
        var bytes = Array("GGUF".utf8) + le(UInt32(3)) + le(UInt64(1)) + le(UInt64(0))
        bytes += le(UInt64(1)) + Array("w".utf8) + le(UInt32(3)) + le(UInt64(0)) + le(UInt64(1) << 40) + le(UInt64(1) << 40)
        bytes += le(UInt32(0)) + le(UInt64(0))                  // F32 at offset 0
        bytes += [UInt8](repeating: 0, count: (32 - bytes.count % 32) % 32)
        let dir = try TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/empty.gguf"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let file = try GGUFFile(path: path)
        let t = try #require(file.tensors.first)
        #expect(t.shape == [1 << 40, 1 << 40, 0] && t.elementCount == 0 && t.byteCount == 0)
        #expect(try file.readF32("w").isEmpty)
        #expect(TensorInfo.elementCount(of: [3, 0, 1 << 62, 1 << 62]) == 0 && TensorInfo.elementCount(of: []) == 1)
    }
}
