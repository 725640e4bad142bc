import Foundation
import Testing
@testable import Checkpoints

/// Baking a per-head temperature into quantised rows: scaled rows dequantise to λ × the
/// original within the reported bound; every other byte is unchanged.
@Suite struct RowScalingTests {
    /// Random blocks of `type` with finite, moderate fp16 scale fields.
    static func randomBlocks(_ type: GGMLType, count: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix(seed: seed)
        var bytes = (0..<(count * type.blockBytes)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let fields = RowScaling.halfFields(type) ?? []
        for b in 0..<count {
            for f in fields {
                let v = Float16(Float(rng.next() % 1000 + 1) / 1000 * (rng.next() % 2 == 0 ? 1 : -1) * 0.05)
                bytes[b * type.blockBytes + f] = UInt8(v.bitPattern & 0xFF)
                bytes[b * type.blockBytes + f + 1] = UInt8(v.bitPattern >> 8)
            }
        }
        return bytes
    }

    /// Magnitude that bounds the rounding of every term of an element: |y| plus twice the
    /// min term for types that subtract one.
    static func elementScale(_ type: GGMLType, _ block: UnsafeRawPointer, _ y: Float) -> Float {
        switch type {
        case .q4_K, .q5_K: return abs(y) + 2 * 63 * abs(BlockCodecs.half(block, 2))
        case .q2_K: return abs(y) + 2 * 15 * abs(BlockCodecs.half(block, 82))
        case .q4_1, .q5_1: return abs(y) + 2 * abs(BlockCodecs.half(block, 2))
        default: return abs(y)
        }
    }

    @Test(arguments: [GGMLType.q8_0, .q4_K, .q6_K])
    func scalesHeadRowsOf4096Square(_ type: GGMLType) throws {
        let rows = 4096, cols = 4096
        let rowBytes = try #require(type.rowBytes(elements: cols))
        let original = Self.randomBlocks(type, count: rows * rowBytes / type.blockBytes, seed: UInt64(type.rawValue))
        var patched = original
        // Heads of 128 rows: head 3 by 1.37 (fp16-rounded), head 17 by 2 (exact).
        let plan: [(rows: Range<Int>, lambda: Float)] = [(384..<512, 1.37), (2176..<2304, 2)]
        var reports: [Float: RowScaling.Report] = [:]
        try patched.withUnsafeMutableBytes { buf in
            for (range, lambda) in plan {
                for r in range {
                    let rep = try RowScaling.scaleRow(buf.baseAddress! + r * rowBytes, elements: cols, type: type, by: lambda)
                    reports[lambda] = (reports[lambda] ?? .none).merged(rep)
                }
            }
        }
        #expect(reports[2]?.worstRelativeError == 0)
        let bound = try #require(reports[1.37]?.worstRelativeError)
        #expect(bound > 0 && bound <= 0x1p-11)
        print("\(type.name): 1.37 worst field rounding \(bound), λ=2 exact")
        var worstSeen: Float = 0
        try original.withUnsafeBytes { o in
            try patched.withUnsafeBytes { p in
                for r in 0..<rows {
                    let lambda = plan.first { $0.rows.contains(r) }?.lambda
                    let a = o.baseAddress! + r * rowBytes, b = p.baseAddress! + r * rowBytes
                    guard let lambda else {
                        #expect(memcmp(a, b, rowBytes) == 0, "row \(r) changed")
                        continue
                    }
                    var before = [Float](repeating: 0, count: cols), after = before
                    try BlockCodecs.dequantize(type, from: a, count: cols, into: &before)
                    try BlockCodecs.dequantize(type, from: b, count: cols, into: &after)
                    let rel = Float(lambda == 2 ? 0 : bound)
                    for c in 0..<cols {
                        let block = a + c / type.blockElements * type.blockBytes
                        let expected = lambda * before[c]
                        let slack = rel * lambda * Self.elementScale(type, block, before[c]) * 1.0001 + 4 * expected.ulp
                        let err = abs(after[c] - expected)
                        worstSeen = max(worstSeen, err / max(abs(expected), 1e-30))
                        if err > slack { Issue.record("row \(r) col \(c): \(after[c]) vs λ·x = \(expected)"); return }
                    }
                }
            }
        }
        print("\(type.name): worst element relative deviation \(worstSeen)")
    }

    @Test func refusesWhatCannotBeDoneInPlace() throws {
        var mx = [UInt8](repeating: 0x10, count: 17)
        #expect(throws: QuantError.self) { try RowScaling.scaleRow(&mx, elements: 32, type: .mxfp4, by: 1.5) }
        #expect(try RowScaling.scaleRow(&mx, elements: 32, type: .mxfp4, by: 4).worstRelativeError == 0)
        #expect(mx[0] == 0x12)
        var q = [UInt8](repeating: 0, count: 34)
        q[0] = 0xFF; q[1] = 0x7B  // fp16 65504
        let before = q
        #expect(throws: QuantError.self) { try RowScaling.scaleRow(&q, elements: 32, type: .q8_0, by: 2) }
        #expect(q == before)
        #expect(throws: QuantError.self) { try RowScaling.scaleRow(&q, elements: 32, type: .q8_0, by: -1) }
        #expect(throws: QuantError.self) { try RowScaling.scaleRow(&q, elements: 30, type: .q8_0, by: 1.5) }
    }

    @Test func iq1mSplitScaleIsRepacked() throws {
        var block = Self.randomBlocks(.iq1_S, count: 1, seed: 9)  // any 56 bytes
        block = Array(block.prefix(50)) + [0, 0, 0, 0, 0, 0]
        // Super-scale 1.0 (0x3C00) split over the top nibbles of the four scale words.
        let words: [UInt16] = [0x0123, 0x0456, 0xC789, 0x3ABC]
        for (i, w) in words.enumerated() { block[48 + 2 * i] = UInt8(w & 0xFF); block[49 + 2 * i] = UInt8(w >> 8) }
        #expect(block.withUnsafeBytes { IQDecoders.iq1mScale($0.baseAddress!) } == 1.0)
        try RowScaling.scaleRow(&block, elements: 256, type: .iq1_M, by: 0.5)
        #expect(block.withUnsafeBytes { IQDecoders.iq1mScale($0.baseAddress!) } == 0.5)
        // The low 12 bits of every word are untouched.
        for (i, w) in words.enumerated() { #expect((UInt16(block[48 + 2 * i]) | UInt16(block[49 + 2 * i]) << 8) & 0x0FFF == w & 0x0FFF) }
    }
}

/// A small deterministic generator (SplitMix64) for test data.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The scaled bytes read by code we did not write: each quantised type's blocks and their
/// row-scaled copy go into one GGUF file, PyPI gguf dequantises both
/// (`scripts/reference/dequantize_gguf.py`), and the scaled rows must be λ × the originals within
/// the bound `scaleRow` reported, every other row bit for bit the original. `make test` creates
/// the virtual environment this needs.
private let venvPython = TestPaths.root.appendingPathComponent(".venv/bin/python").path

@Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: venvPython), "needs .venv (make venv)"))
struct RowScalingOracleTests {
    static let types: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .iq2_XXS, .iq2_XS, .iq2_S,
                                     .iq3_XXS, .iq3_S, .iq1_S, .iq1_M, .iq4_NL, .iq4_XS, .tq1_0, .tq2_0, .mxfp4, .nvfp4, .f16, .bf16]
    static let (rows, cols) = (8, 512)

    /// Random blocks whose values are finite and moderate (a block that decodes otherwise is
    /// drawn again), so that relative errors mean something.
    static func blocks(_ type: GGMLType, seed: UInt64) throws -> [UInt8] {
        let count = rows * cols / type.blockElements
        var bytes = RowScalingTests.randomBlocks(type, count: count, seed: seed)
        var rng = SplitMix(seed: seed ^ 0x5EED)
        var values = [Float](repeating: 0, count: type.blockElements)
        for b in 0..<count {
            for _ in 0..<1000 {
                var block = Array(bytes[(b * type.blockBytes)..<((b + 1) * type.blockBytes)])
                let finite = try block.withUnsafeBytes { raw -> Bool in
                    try BlockCodecs.dequantize(type, from: raw.baseAddress!, count: type.blockElements, into: &values)
                    return values.allSatisfy { $0.isFinite && abs($0) < 1e4 }
                }
                // and scalable by 2 in place (an NVFP4 scale byte at the top of its range is not)
                let ok = try finite && block.withUnsafeMutableBytes { raw in
                    (try? RowScaling.scaleRow(raw.baseAddress!, elements: type.blockElements, type: type, by: 2)) != nil
                }
                if ok { break }
                for i in 0..<type.blockBytes { bytes[b * type.blockBytes + i] = UInt8(truncatingIfNeeded: rng.next()) }
            }
        }
        return bytes
    }

    @Test func scaledRowsDequantiseToLambdaTimesTheOriginalUnderPyPIGGUF() throws {
        let dir = try TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Rows 2–3 by 1.37 (2 where only powers of two scale exactly), rows 4–5 by 2, the rest untouched.
        func lambda(_ type: GGMLType, row: Int) -> Float? {
            switch row {
            case 2, 3: return RowScaling.refusal(type, by: 1.37) == nil ? 1.37 : 2
            case 4, 5: return 2
            default: return nil
            }
        }
        var tensors: [OutputTensor] = [], bounds: [GGMLType: Float] = [:], originals: [GGMLType: [UInt8]] = [:]
        for (i, type) in Self.types.enumerated() {
            let rowBytes = try #require(type.rowBytes(elements: Self.cols))
            let original = try Self.blocks(type, seed: 1000 + UInt64(i))
            var scaled = original
            var report = RowScaling.Report.none
            try scaled.withUnsafeMutableBytes { buf in
                for r in 0..<Self.rows {
                    guard let l = lambda(type, row: r) else { continue }
                    report = report.merged(try RowScaling.scaleRow(buf.baseAddress! + r * rowBytes, elements: Self.cols, type: type, by: l))
                }
            }
            bounds[type] = Float(report.worstRelativeError)
            originals[type] = original
            for (prefix, bytes) in [("o", original), ("s", scaled)] {
                tensors.append(OutputTensor(name: "\(prefix).\(type.name)", type: TensorType(ggml: type), shape: [Self.rows, Self.cols],
                                            byteCount: bytes.count) { sink in try bytes.withUnsafeBytes { try sink($0) } })
            }
        }
        let file = dir + "/scaled.gguf", values = dir + "/values.f32"
        try GGUFWriter.write(metadata: [GGUFKeyValue("general.architecture", .string("rowscaling"))], tensors: tensors, to: file)
        let python = Process()
        python.executableURL = URL(fileURLWithPath: venvPython)
        python.arguments = [TestPaths.root.appendingPathComponent("scripts/reference/dequantize_gguf.py").path, file, values]
        try python.run()
        python.waitUntilExit()
        try #require(python.terminationStatus == 0)
        let floats = try Data(contentsOf: URL(fileURLWithPath: values)).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        let n = Self.rows * Self.cols
        try #require(floats.count == 2 * n * Self.types.count)
        for (i, type) in Self.types.enumerated() {
            let o = floats[(2 * i * n)..<(2 * i * n + n)].map { $0 }, s = floats[((2 * i + 1) * n)..<((2 * i + 2) * n)].map { $0 }
            let bound = try #require(bounds[type])
            if type == .f16 || type == .bf16 {
                // Plain floats: λ·x in F32, rounded once to the stored type (numpy's
                // `(x.astype(float32) * λ).astype(dtype)`), bit for bit, subnormals included.
                func rounded(_ x: Float) -> Float {
                    if type == .f16 { return Float(Float16(x)) }
                    let b = x.bitPattern
                    return Float(bitPattern: (b &+ 0x7FFF &+ ((b >> 16) & 1)) & 0xFFFF_0000)
                }
                for k in 0..<n {
                    let want = lambda(type, row: k / Self.cols).map { rounded($0 * o[k]) } ?? o[k]
                    if s[k].bitPattern != want.bitPattern { Issue.record("\(type.name) element \(k): PyPI reads \(s[k]), want \(want)"); break }
                }
                continue
            }
            #expect(bound <= 0x1p-11, "\(type.name): reported bound \(bound)")
            let rowBytes = type.rowBytes(elements: Self.cols)!
            var worst: Float = 0
            try originals[type]!.withUnsafeBytes { raw in
                for r in 0..<Self.rows {
                    for c in 0..<Self.cols {
                        let k = r * Self.cols + c
                        guard let l = lambda(type, row: r) else {
                            #expect(s[k].bitPattern == o[k].bitPattern, "\(type.name) row \(r) col \(c): an untouched row changed"); continue
                        }
                        let block = raw.baseAddress! + r * rowBytes + c / type.blockElements * type.blockBytes
                        let expected = l * o[k], err = abs(s[k] - expected)
                        let rel: Float = l == 2 ? 0 : bound
                        let slack = rel * l * RowScalingTests.elementScale(type, block, o[k]) * 1.0001 + 4 * expected.ulp
                        worst = max(worst, err / max(abs(expected), 1e-30))
                        if err > slack { Issue.record("\(type.name) row \(r) col \(c): PyPI reads \(s[k]), λ·x = \(expected)"); return }
                    }
                }
            }
            print("\(type.name): PyPI gguf, scaled rows within \(worst) of λ·x (reported field bound \(bound))")
        }
    }
}
