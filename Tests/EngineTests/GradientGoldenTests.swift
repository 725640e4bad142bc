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

    @Test(arguments: ["nope_gqa2_lambda", "rope_mha", "hybrid_tied_lambda", "nope_t70"])
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
