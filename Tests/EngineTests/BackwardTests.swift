import Checkpoints
import Foundation
import Testing
@testable import Engine

/// Gradients against central finite differences of the loss (the forward of `LlamaModel`).
@Suite struct BackwardTests {
    static func load(_ name: String) throws -> (Parameters, ModelConfig, [[Int]], [[Float]]) {
        let c = try GoldenCase(folder: GoldenForwardTests.root.appendingPathComponent(name).path)
        return (try c.parameters(), c.config, c.tokens, c.lambda)
    }

    /// Mean loss by the inference engine, in Double (the finite-difference oracle).
    static func loss(_ p: Parameters, _ config: ModelConfig, _ tokens: [[Int]], _ lambda: [[Float]]) throws -> Double {
        let store = ParameterStore(p)
        let model = try LlamaModel(store: store, config: config, policy: .resident)
        let r = try model.forward(ForwardRequest(tokens: tokens, temperatures: lambda.map { Optional($0) }, losses: true))
        return r.losses.reduce(0.0) { $0 + Double($1) } / Double(r.losses.count)
    }

    @Test(arguments: ["nope_lambda", "llama_mha_rope", "smollm3_every4", "llama_gqa2_nope"])
    func gradientsMatchFiniteDifferences(_ name: String) throws {
        let (p, config, tokens, lambda) = try Self.load(name)
        let backprop = try Backprop(config: config)
        let r = try backprop.lossAndGradients(p, tokens: tokens, lambda: lambda, weightGradients: true)
        let reference = try Self.loss(p, config, tokens, lambda)
        #expect(abs(Double(r.loss) - reference) < 1e-5, "\(name): loss \(r.loss) vs forward \(reference)")
        var worst = 0.0
        // λ: every head of every layer.
        for l in 0..<config.layers {
            for h in 0..<config.heads {
                let step: Float = 1e-2
                var up = lambda, down = lambda
                up[l][h] += step; down[l][h] -= step
                let fd = (try Self.loss(p, config, tokens, up) - Self.loss(p, config, tokens, down)) / Double(2 * step)
                let err = abs(fd - Double(r.lambda[l][h])) / max(1e-3, abs(fd))
                worst = max(worst, err)
                #expect(err < 2e-2, "\(name) dλ[\(l)][\(h)]: \(r.lambda[l][h]) vs finite difference \(fd)")
            }
        }
        // A few coordinates of every weight tensor.
        let grads = try #require(r.weights)
        for (tensor, _) in p.tensorList {
            let g = try #require(grads.tensor(tensor))
            let count = g.count
            for probe in [0, count / 3, (2 * count) / 3, count - 1] {
                var up = p, down = p
                let step: Float = 1e-2
                up.withTensor(tensor) { $0[probe] += step }
                down.withTensor(tensor) { $0[probe] -= step }
                let fd = (try Self.loss(up, config, tokens, lambda) - Self.loss(down, config, tokens, lambda)) / Double(2 * step)
                let err = abs(fd - Double(g[probe])) / max(2e-3, abs(fd))
                worst = max(worst, err)
                #expect(err < 5e-2, "\(name) \(tensor)[\(probe)]: \(g[probe]) vs finite difference \(fd)")
            }
        }
        print("\(name): loss \(r.loss), worst relative gradient error vs finite differences \(worst)")
    }

    /// The λ-only path (frozen weights) gives the same λ gradient and no weight gradients.
    @Test func lambdaOnlyPathAgrees() throws {
        let (p, config, tokens, lambda) = try Self.load("nope_lambda")
        let backprop = try Backprop(config: config)
        let full = try backprop.lossAndGradients(p, tokens: tokens, lambda: lambda, weightGradients: true)
        let frozen = try backprop.lossAndGradients(p, tokens: tokens, lambda: lambda, weightGradients: false)
        #expect(frozen.weights == nil && frozen.loss == full.loss)
        #expect(frozen.lambda == full.lambda)
    }
}

