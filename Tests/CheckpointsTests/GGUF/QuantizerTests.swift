import Foundation
import Testing
@testable import Checkpoints

@Suite struct QuantizerTests {
    /// ggml test-quantize-fns's data: 0.1 + 2·cos(i), 4096 values.
    static let testVector: [Float] = (0..<4096).map { 0.1 + 2 * cos(Float($0)) }

    /// ggml's `array_rmse`: sqrt(Σ diff²) / n.
    static func ggmlRMSE(_ a: [Float], _ b: [Float]) -> Double {
        sqrt(zip(a, b).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }) / Double(a.count)
    }

    /// MXFP4 equals gguf-py's quantiser and NVFP4 the numpy restatement of ggml's reference
    /// (scripts/reference/make_fp4_quant_golden.py), byte for byte, on rows from 2⁻²⁰ (UE4M3
    /// subnormal scales) to 2¹² (clamped scales) with zero, constant, grid and tie blocks.
    @Test(arguments: [GGMLType.mxfp4, .nvfp4])
    func fp4MatchesTheOracle(_ type: GGMLType) throws {
        let file = try GGUFFile(path: TestPaths.fixture("gguf/fp4_quant.gguf"))
        let input = try file.readF32("input")
        let expected = try file.withRawBytes("q.\(type.name)", Array.init)
        let ours = try Quantizers.quantize(input, as: type)
        #expect(ours.count == expected.count)
        let blockBytes = type.blockBytes
        let differing = stride(from: 0, to: ours.count, by: blockBytes).filter { ours[$0..<($0 + blockBytes)] != expected[$0..<($0 + blockBytes)] }
        #expect(differing.isEmpty, "\(type.name): \(differing.count) of \(ours.count / blockBytes) blocks differ, first at block \(differing.first.map { $0 / blockBytes } ?? -1)")
    }

    /// candle's and ggml's thresholds: 0.002 for 4- and 5-bit (and wider) types.
    @Test(arguments: [GGMLType.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K])
    func errorOnTheGGMLTestVector(_ type: GGMLType) throws {
        let q = try Quantizers.quantize(Self.testVector, as: type)
        var back = [Float](repeating: 0, count: 4096)
        try q.withUnsafeBytes { try BlockCodecs.dequantize(type, from: $0.baseAddress!, count: 4096, into: &back) }
        let rmse = Self.ggmlRMSE(Self.testVector, back)
        print("\(type.name): ggml total error \(rmse)")
        #expect(rmse < 0.002)
    }

    /// A tie that a fused multiply-add (or float64) rounds the other way: x·id = −4.5000002 is
    /// −4.5 in float32, so q = trunc(4.0) = 4, where the fused value 3.99999977 gives 3. The
    /// expected bytes are gguf.quants.quantize's (gguf 0.19.0) for the same block.
    @Test func exactTiesRoundAsGGUFPyDoes() throws {
        var q4 = [Float](repeating: 0, count: 32)
        (q4[0], q4[1]) = (-0.9375, -0.52734375)
        #expect(try Quantizers.quantize(q4, as: .q4_0) == [128, 47, 128, 132] + [UInt8](repeating: 136, count: 14))
        var q5 = [Float](repeating: 0, count: 32)
        (q5[0], q5[1]) = (-1.875, -1.0546875)
        #expect(try Quantizers.quantize(q5, as: .q5_0) == [128, 47, 252, 255, 255, 255, 0, 7] + [UInt8](repeating: 0, count: 14))
    }

    /// The K-quant searches must beat a naive quantiser of the same width.
    @Test func kQuantsBeatTheirSimpleCousins() throws {
        func err(_ t: GGMLType) throws -> Double {
            let q = try Quantizers.quantize(Self.testVector, as: t)
            var back = [Float](repeating: 0, count: 4096)
            try q.withUnsafeBytes { try BlockCodecs.dequantize(t, from: $0.baseAddress!, count: 4096, into: &back) }
            return Self.ggmlRMSE(Self.testVector, back)
        }
        #expect(try err(.q4_K) < err(.q4_0))
        #expect(try err(.q5_K) < err(.q5_0))
        #expect(try err(.q6_K) < err(.q5_K))
    }

    @Test func zeroAndConstantBlocksSurvive() throws {
        for type in Quantizers.supported where type.isQuantized {
            for values in [[Float](repeating: 0, count: 256), [Float](repeating: 0.75, count: 256)] {
                let q = try Quantizers.quantize(values, as: type)
                var back = [Float](repeating: .nan, count: 256)
                try q.withUnsafeBytes { try BlockCodecs.dequantize(type, from: $0.baseAddress!, count: 256, into: &back) }
                let worst = zip(values, back).map { abs($0 - $1) }.max()!
                // Zero blocks come back exactly; a constant block is one level of the grid, off
                // only by the fp16 rounding of its scale (relative 2⁻¹¹; 2⁻¹⁰ allows the product
                // of a 6-bit sub-scale and the fp16 super-scale of the K types). The old bound,
                // 1/8 of the value, let a broken quantiser pass (issue 13).
                let bound: Float = values[0] == 0 ? 0 : 0.75 * 0x1p-10
                #expect(worst <= bound, "\(type.name) on \(values[0]): worst \(worst), bound \(bound)")
            }
        }
        #expect(throws: QuantError.notQuantizable(.iq2_XXS)) { try Quantizers.quantize([Float](repeating: 0, count: 256), as: .iq2_XXS) }
        #expect(throws: QuantError.self) { try Quantizers.quantize([Float](repeating: 0, count: 31), as: .q8_0) }
    }

    /// The fast block decoders agree with the per-element reference decoders on random blocks
    /// of every decodable type.
    @Test func fastAndNaiveDecodersAgree() throws {
        let types = GGMLType.allCases.filter { $0.isQuantized && $0 != .q1_0 && $0 != .q2_0 }
        for type in types {
            let blocks = 24
            var bytes = RowScalingTests.randomBlocks(type, count: blocks, seed: 77 + UInt64(type.rawValue))
            if type == .q8_K {  // an f32 scale field
                for b in 0..<blocks { withUnsafeBytes(of: Float(0.01 * Float(b + 1))) { for i in 0..<4 { bytes[b * 292 + i] = $0[i] } } }
            }
            if type == .iq1_M {  // the split super-scale: a finite value
                for b in 0..<blocks { for i in 0..<4 { bytes[b * 56 + 49 + 2 * i] &= 0x0F }; bytes[b * 56 + 55] |= 0x20 }
            }
            let n = blocks * type.blockElements
            var fast = [Float](repeating: .nan, count: n)
            try bytes.withUnsafeBytes { try BlockCodecs.dequantize(type, from: $0.baseAddress!, count: n, into: &fast) }
            var mismatches = 0
            bytes.withUnsafeBytes { raw in
                for k in 0..<n {
                    let block = raw.baseAddress! + k / type.blockElements * type.blockBytes
                    let naive = NaiveDecoders.element(type, block, k % type.blockElements)
                    if naive.map({ $0.bitPattern == fast[k].bitPattern || ($0.isNaN && fast[k].isNaN) }) != true { mismatches += 1 }
                }
            }
            #expect(mismatches == 0, "\(type.name): \(mismatches) of \(n) elements differ")
        }
    }
}
