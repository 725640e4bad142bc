import Checkpoints
import Foundation

/// Loss and gradients of a Llama-family model: the mean next-token cross-entropy over every
/// position t < T−1 of B sequences, its gradient with respect to the per-head temperatures λ
/// and, for pretraining, every weight.
///
/// The layer is `Layer.forward` / `Layer.backward`, the same code inference runs. Weights come
/// from a `ModelWeightSource`: training parameters in memory, or a checkpoint read layer by
/// layer (frozen weights: the temperature search computes no weight gradient and holds no
/// second F32 copy of the model).
///
/// Activation checkpointing: the forward keeps each layer's input residual x_in [N, D]; with
/// `.keep` it also keeps every activation (fast, memory grows with layers × N × (5D + 3F));
/// `.keepAttention` keeps the attention half and the backward recomputes the MLP's gate and
/// up projections one row chunk at a time; with `.recompute` the backward also re-runs each
/// layer's attention half from x_in, so beyond the residuals only one layer's attention
/// activations are alive. Attention never stores T×T: its backward recomputes probability tiles.
public final class Backprop {
    public enum Activations: String, Sendable, CaseIterable { case keep, keepAttention = "keep-attention", recompute }

    public let config: ModelConfig
    public let rope: Rope
    public var threads: Int
    /// Rows per chunk inside a layer.
    public var rowChunk = 512

    public init(config: ModelConfig, threads: Int = 2) {
        self.config = config
        rope = Rope(config: config)
        self.threads = threads
    }

    public struct Result {
        public var loss: Float
        /// Weight gradients (nil when not requested).
        public var weights: Parameters?
        /// d loss / d λ, [L][H]; zero rows for layers that were not searched.
        public var lambda: [[Float]]
    }

    /// Mean next-token loss over `tokens`, its gradient with respect to λ, and (if asked) every weight.
    public func lossAndGradients(_ p: Parameters, tokens: [[Int]], lambda: [[Float]], weightGradients: Bool) throws -> Result {
        var grads = weightGradients ? Parameters(zerosLike: p) : nil
        let r = try BLASRuntime.exclusive {
            try pass(p, tokens: tokens, lambda: lambda, searched: Array(repeating: true, count: config.layers),
                     activations: .keep, grads: &grads)
        }
        return Result(loss: r.loss, weights: grads, lambda: r.lambda)
    }

    /// The temperature search's step: loss and d loss / d λ on frozen weights, for the layers
    /// marked in `searched` only (the backward stops at the lowest of them).
    public func lossAndTemperatureGradient(_ source: any ModelWeightSource, tokens: [[Int]], lambda: [[Float]],
                                           searched: [Bool], activations: Activations) throws -> (loss: Float, lambda: [[Float]]) {
        var none: Parameters? = nil
        return try BLASRuntime.exclusive {
            try pass(source, tokens: tokens, lambda: lambda, searched: searched, activations: activations, grads: &none)
        }
    }

    /// Bytes the activations of one pass take beyond the weights, for choosing a policy.
    public func activationBytes(sequences B: Int, length T: Int, searchedFrom lowest: Int, _ a: Activations) -> Int {
        let N = B * T, kept = config.layers - lowest
        let residuals = 4 * N * config.hidden * (kept + 4)
        let backward = 4 * N * config.heads * config.headDim * 4   // datt, dq, dk, dv
        switch a {
        case .keep: return residuals + backward + kept * LayerActivations.bytes(config: config, rows: N, keepMLP: true)
        case .keepAttention: return residuals + backward + kept * LayerActivations.bytes(config: config, rows: N, keepMLP: false)
        case .recompute: return residuals + backward + LayerActivations.bytes(config: config, rows: N, keepMLP: false)
        }
    }

    /// The fastest policy whose activations fit `budget` bytes.
    public func activations(sequences B: Int, length T: Int, searchedFrom lowest: Int, budget: Int) -> Activations {
        [.keep, .keepAttention].first { activationBytes(sequences: B, length: T, searchedFrom: lowest, $0) <= budget } ?? .recompute
    }

    func pass(_ source: any ModelWeightSource, tokens: [[Int]], lambda given: [[Float]], searched: [Bool],
              activations policy: Activations, grads: inout Parameters?) throws -> (loss: Float, lambda: [[Float]]) {
        BLASRuntime.setThreadCount(threads)
        let c = config
        let lambda = try Temperatures.resolve(given.map { Optional($0) }, config: c)
        guard searched.count == c.layers, let lowest = searched.firstIndex(of: true) else {
            throw EngineError.badTemperatures("mark one or more of the \(c.layers) layers as searched")
        }
        precondition(grads == nil || lowest == 0, "weight gradients need every layer")
        let (T, x) = try Embedding.gather(tokens, table: source.embedding, config: c, minimumLength: 2)
        let B = tokens.count, N = B * T, D = c.hidden, H = c.heads, V = c.vocab
        let eps = Float(c.normEps)
        let context = LayerContext(config: c, rope: rope, length: T, threads: threads, rowChunk: rowChunk)

        // ---- forward: keep x_in of every layer the backward reaches (and, with .keep, all) ----
        var inputs = [FloatBuffer?](repeating: nil, count: c.layers)
        var saved = [LayerActivations?](repeating: nil, count: c.layers)
        for l in 0..<c.layers {
            if l >= lowest {
                let copy = FloatBuffer(N * D)
                copy.pointer.update(from: x.pointer, count: N * D)
                inputs[l] = copy
            }
            let save = policy != .recompute && l >= lowest ? LayerActivations(config: c, rows: N, keepMLP: policy == .keep) : nil
            Layer.forward(try source.layerWeights(l), layer: l, x: x.pointer, sequences: B, context: context,
                          lambda: lambda[l], entropy: nil, save: save)
            saved[l] = save
        }
        // hf = rmsnorm(x) · w_final
        let hf = FloatBuffer(N * D), rstdF = FloatBuffer(N)
        Kernels.rmsnorm(hf.pointer, x.pointer, source.finalNorm, rows: N, width: D, eps: eps, rstd: rstdF.pointer)

        // ---- loss and its gradient at the head ----
        let count = Float(B * (T - 1))
        let dhf = FloatBuffer(N * D)
        let dHead = FloatBuffer(grads == nil ? 0 : V * D)
        let total = LMHead(head: source.headWeights, vocab: V, width: D)
            .run(hf: hf.pointer, tokens: tokens, length: T,
                 gradient: LMHead.Gradient(dhf: dhf.pointer, dHead: grads == nil ? nil : dHead.pointer, scale: 1 / count))

        // ---- backward ----
        let dx = FloatBuffer(N * D)
        Layer.rmsnormBackward(dx: dx.pointer, dy: dhf.pointer, x: x.pointer, w: source.finalNorm, rstd: rstdF.pointer, rows: N, width: D)
        if grads != nil {
            Layer.rmsnormWeightGradient(&grads!.finalNorm, dy: dhf.pointer, x: x.pointer, rstd: rstdF.pointer, rows: N, width: D)
        }
        var layerGrads: [LayerWeights?] = grads?.layers.map { Optional($0) } ?? Array(repeating: nil, count: c.layers)
        grads?.layers = []  // the gradients of each layer now have one owner: accumulated in place
        var dLambda = [[Float]](repeating: [Float](repeating: 0, count: H), count: c.layers)
        for l in stride(from: c.layers - 1, through: lowest, by: -1) {
            let w = try source.layerWeights(l)
            let xIn = inputs[l]!
            let act: LayerActivations
            if let kept = saved[l] {
                act = kept
            } else {
                // recompute the attention half from x_in (the MLP half is recomputed per chunk)
                act = LayerActivations(config: c, rows: N, keepMLP: false)
                let scratch = FloatBuffer(N * D)
                scratch.pointer.update(from: xIn.pointer, count: N * D)
                Layer.forward(w, layer: l, x: scratch.pointer, sequences: B, context: context, lambda: lambda[l], entropy: nil,
                              save: act, attentionOnly: true)
            }
            let dl = FloatBuffer(H)
            Layer.backward(w, layer: l, xIn: xIn.pointer, dx: dx.pointer, sequences: B, context: context, lambda: lambda[l],
                           dLambda: dl.pointer, saved: act, grads: &layerGrads[l])
            if searched[l] { dLambda[l] = dl.array }
            inputs[l] = nil
            saved[l] = nil
        }
        if grads != nil {
            grads!.layers = layerGrads.map { $0! }
            // embedding rows receive dx; a tied head adds its own gradient
            grads!.embedding.withUnsafeMutableBufferPointer { e in
                for (b, seq) in tokens.enumerated() {
                    for (t, id) in seq.enumerated() { Kernels.add(e.baseAddress! + id * D, dx.pointer + (b * T + t) * D, count: D) }
                }
            }
            if grads!.lmHead != nil { grads!.lmHead = dHead.array } else { Kernels.add(&grads!.embedding, dHead.pointer, count: V * D) }
        }
        return (Float(total / Double(count)), dLambda)
    }
}
