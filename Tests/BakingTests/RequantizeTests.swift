@testable import Checkpoints
import Foundation
import Testing
@testable import Baking

/// `bake --requantize`: MXFP4/NVFP4 rows can carry only power-of-two scales in place, so any
/// other scale is refused by name unless requantising is asked for; then exactly the scaled rows
/// are dequantised, multiplied and quantised again by the FP4 quantisers (byte-checked against
/// gguf-py and ggml's reference in QuantizerTests), and every other byte is the source's.
@Suite struct RequantizeTests {
    /// fixtures/bake/gguf/tiny-f32.gguf with every attn_q written as `type` (our quantiser).
    static func fp4Source(_ type: GGMLType, in dir: String) throws -> Checkpoint {
        let f32 = try GGUFFile(path: BakeGoldenTests.folder + "/gguf/tiny-f32.gguf")
        let tensors = try f32.tensors.map { info in
            info.name.hasSuffix("attn_q.weight")
                ? try TensorTranscoder.output(info, from: f32, as: .quantized(type))
                : OutputTensor.copy(info, from: f32)
        }
        let path = dir + "/tiny-\(type.name).gguf"
        _ = try GGUFWriter.write(metadata: f32.metadata, tensors: tensors, to: path)
        return try Checkpoint.open(path)
    }

    @Test(arguments: [GGMLType.mxfp4, .nvfp4])
    func requantisesOnlyTheScaledRows(_ type: GGMLType) throws {
        let dir = try BakeFixtures.scratch("requant\(type.name)")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let source = try Self.fp4Source(type, in: dir)
        let config = try source.requireConfig()
        // Layer 0 keeps scale 1, layer 1 mixes powers of two (in place) with other scales.
        var scales = [[Float]?](repeating: nil, count: config.layers)
        scales[1] = (0..<config.heads).map { $0 % 2 == 0 ? 2 : 1.37 }
        let table = TemperatureTable(method: "test", architecture: config.modelType, layers: config.layers, heads: config.heads,
                                     headDim: config.headDim, scales: scales)

        // Without --requantize: refused by tensor, with the way out named; nothing written.
        let name = "blk.1.attn_q.weight"
        #expect {
            try BakePlan.make(source, scales: .table(table, file: "t.temps.json"))
        } throws: { error in
            guard case BakeError.cannotScale(_, let tensor, let reason) = error else { return false }
            return tensor == name && reason.contains("power-of-two") && reason.contains("--requantize")
        }

        let out = dir + "/out.gguf"
        let report = try Baker.bake(try BakePlan.make(source, scales: .table(table, file: "t"), requantize: true), to: out)
        let baked = try Checkpoint.open(out)
        let E = config.headDim, rows = config.heads * E, columns = config.hidden
        let rowBytes = try #require(type.rowBytes(elements: columns))
        let before = try source.store.withRawBytes(name, Array.init), after = try baked.store.withRawBytes(name, Array.init)
        var requantized = 0
        for r in 0..<rows {
            let lambda = scales[1]![r / E]
            let old = Array(before[(r * rowBytes)..<((r + 1) * rowBytes)]), new = Array(after[(r * rowBytes)..<((r + 1) * rowBytes)])
            var expected = old
            // λ = 2 edits the exponents in place, unless one would leave its range (an NVFP4
            // subnormal scale): then that row is requantised too.
            let inPlace = lambda == 2 && (try? expected.withUnsafeMutableBytes { try RowScaling.scaleRow($0.baseAddress!, elements: columns, type: type, by: 2) }) != nil
            if !inPlace {
                var values = [Float](repeating: 0, count: columns)
                try old.withUnsafeBytes { try BlockCodecs.dequantize(type, from: $0.baseAddress!, count: columns, into: &values) }
                expected = try Quantizers.quantize(values.map { $0 * lambda }, as: type)
                requantized += 1
            }
            #expect(new == expected, "row \(r) (λ = \(lambda))")
        }
        #expect(report.requantizedRows == requantized && requantized >= rows / 2)
        // FP4 carries 1 bit of mantissa: requantising costs up to about a fifth of a row's RMS.
        let error = try #require(report.worstRequantizationError)
        #expect(error > 0 && error < 0.25, "worst relative RMS \(error)")
        // Every other tensor but layer 1's q bias (scaled as F32), layer 0's attn_q included, is
        // the source's, byte for byte.
        for info in source.store.tensors where ![name, "blk.1.attn_q.bias"].contains(info.name) {
            #expect(try source.store.withRawBytes(info.name, Array.init) == baked.store.withRawBytes(info.name, Array.init), "\(info.name) changed")
        }
    }
}
