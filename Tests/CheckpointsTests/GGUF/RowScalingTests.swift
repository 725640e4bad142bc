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
