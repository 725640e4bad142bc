import Checkpoints
import Foundation
import Testing
@testable import Engine

/// Gradients and optimiser steps against PyTorch autograd in float64
/// (scripts/reference/make_grad_goldens.py, make_adamw_golden.py; finite-difference checked in
/// fixtures/grads/crosscheck.txt).
@Suite struct GradientGoldenTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures/grads")

    static func load(_ name: String) throws -> (Parameters, ModelConfig, [[Int]], [[Float]], SafetensorsFile) {
        let c = try GoldenCase(folder: root.appendingPathComponent(name).path)
        return (try c.parameters(), c.config, c.tokens, c.lambda, c.golden)
    }

    @Test(arguments: ["nope_gqa2_lambda", "rope_mha", "hybrid_tied_lambda", "nope_t70", "qknorm_bias_lambda", "window_hybrid_lambda"])
    func gradientsMatchAutograd(_ name: String) throws {
        let (p, config, tokens, lambda, golden) = try Self.load(name)
        let r = try Backprop(config: config).lossAndGradients(p, tokens: tokens, lambda: lambda, weightGradients: true)
        #expect(abs(r.loss - (try golden.readF32("loss"))[0]) < 1e-5, "\(name) loss")
        let grads = try #require(r.weights)
        var worst: Float = 0
        func compare(_ ours: [Float], _ ref: [Float], _ label: String) {
            let scale = ref.map(abs).max() ?? 0
            let d = zip(ours, ref).map { abs($0 - $1) }.max() ?? 0
            worst = max(worst, d / max(scale, 1e-12))
            #expect(d <= 1e-4 * max(scale, 1e-6), "\(name) \(label): max |Δ| \(d), max |g| \(scale)")
        }
        for (tensor, _) in p.tensorList { compare(try #require(grads.tensor(tensor)), try golden.readF32("grad." + tensor), tensor) }
        compare(r.lambda.flatMap { $0 }, try golden.readF32("grad.lambda"), "λ")
        print("\(name): worst gradient error relative to the tensor's largest gradient \(worst)")
    }

    /// The search's path: frozen weights read layer by layer from the checkpoint, λ gradient
    /// only, with every activation kept or with the layers recomputed from their inputs.
    @Test(arguments: ["nope_gqa2_lambda", "hybrid_tied_lambda", "nope_t70", "qknorm_bias_lambda", "window_hybrid_lambda"])
    func frozenTemperatureGradientMatchesAutograd(_ name: String) throws {
        let c = try GoldenCase(folder: Self.root.appendingPathComponent(name).path)
        let model = try LlamaModel(store: c.checkpoint.store, config: c.config, policy: .streaming)
        let backprop = Backprop(config: c.config)
        backprop.rowChunk = 16  // several chunks per sequence in the layer and the chunked MLP backward
        let reference = try c.golden.readF32("grad.lambda"), loss = try c.golden.readF32("loss")[0]
        let scale = reference.map(abs).max() ?? 0
        let all = Array(repeating: true, count: c.config.layers)
        var results: [[Float]] = []
        for policy in Backprop.Activations.allCases {
            let r = try backprop.lossAndTemperatureGradient(model, tokens: c.tokens, lambda: c.lambda, searched: all, activations: policy)
            let d = zip(r.lambda.flatMap { $0 }, reference).map { abs($0 - $1) }.max() ?? 0
            #expect(abs(r.loss - loss) < 1e-5, "\(name) \(policy) loss")
            #expect(d <= 1e-4 * scale, "\(name) \(policy): max |Δλ| \(d), max |g| \(scale)")
            results.append(r.lambda.flatMap { $0 })
        }
        // recomputing runs the same kernels on the same rows
        for other in results.dropFirst() {
            #expect(zip(results[0], other).allSatisfy { abs($0 - $1) <= 1e-6 * max(scale, 1e-6) }, "\(name): keep vs recompute")
        }
    }

    /// Layers left out of the search get no gradient, and the searched ones the same as with all.
    @Test func layerMaskStopsTheBackward() throws {
        let c = try GoldenCase(folder: Self.root.appendingPathComponent("window_hybrid_lambda").path)
        let backprop = Backprop(config: c.config)
        let model = try LlamaModel(store: c.checkpoint.store, config: c.config, policy: .resident)
        let all = try backprop.lossAndTemperatureGradient(model, tokens: c.tokens, lambda: c.lambda, searched: [true, true, true, true], activations: .keep)
        let upper = try backprop.lossAndTemperatureGradient(model, tokens: c.tokens, lambda: c.lambda, searched: [false, true, false, true], activations: .recompute)
        #expect(upper.loss == all.loss)
        #expect(upper.lambda[0].allSatisfy { $0 == 0 } && upper.lambda[2].allSatisfy { $0 == 0 })
        for l in [1, 3] {
            #expect(zip(upper.lambda[l], all.lambda[l]).allSatisfy { abs($0 - $1) <= 1e-6 }, "layer \(l)")
        }
        #expect(throws: EngineError.self) {
            try backprop.lossAndTemperatureGradient(model, tokens: c.tokens, lambda: [[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]],
                                                    searched: [true, true, true, true], activations: .keep)
        }
    }

    @Test func adamwFollowsTorch() throws {
        let (p0, config, tokens, lambda, _) = try Self.load("nope_gqa2_lambda")
        let golden = try SafetensorsFile(path: Self.root.appendingPathComponent("adamw/golden.safetensors").path)
        var settings = AdamW.Settings()
        settings.learningRate = 2e-3; settings.warmupSteps = 2; settings.totalSteps = 5
        var p = p0
        let optimizer = AdamW(like: p, settings: settings)
        let backprop = try Backprop(config: config)
        let losses = try golden.readF32("losses"), rates = try golden.readF32("lr"), norms = try golden.readF32("grad_norm")
        for t in 0..<5 {
            let r = try backprop.lossAndGradients(p, tokens: tokens, lambda: lambda, weightGradients: true)
            #expect(abs(r.loss - losses[t]) < 2e-5, "step \(t + 1) loss \(r.loss) vs \(losses[t])")
            let (lr, norm) = optimizer.update(&p, gradients: r.weights!)
            #expect(abs(lr - Double(rates[t])) < 1e-9 && abs(norm - Double(norms[t])) < 1e-4 * Double(norms[t]), "step \(t + 1) lr/norm")
        }
        var worst: Float = 0
        for (tensor, _) in p.tensorList {
            let ours = try #require(p.tensor(tensor)), ref = try golden.readF32("final." + tensor)
            let d = zip(ours, ref).map { abs($0 - $1) }.max() ?? 0
            worst = max(worst, d)
            #expect(d < 3e-5, "\(tensor): max |Δ| \(d) after 5 steps")
        }
        print("AdamW: worst weight difference after 5 steps \(worst)")
    }
}
