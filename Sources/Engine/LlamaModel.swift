import Checkpoints
import Foundation

/// What a forward pass should return.
public struct ForwardRequest {
    /// Token ids: B sequences of equal length T.
    public var tokens: [[Int]]
    /// Per-layer, per-head temperature multipliers λ (nil, or a nil layer: all 1).
    public var temperatures: [[Float]?]?
    /// Positions (0-based) whose logits to return, for every sequence; empty for none.
    public var logitPositions: [Int]
    /// Per-token log-loss of predicting token t+1 at position t.
    public var losses: Bool
    /// Per-layer, per-head, per-position attention entropy in bits.
    public var entropy: Bool
    /// The residual stream after the embedding and after each layer (before the final norm).
    public var hiddenStates: Bool

    public init(tokens: [[Int]], temperatures: [[Float]?]? = nil, logitPositions: [Int] = [], losses: Bool = false,
                entropy: Bool = false, hiddenStates: Bool = false) {
        self.tokens = tokens
        self.temperatures = temperatures
        self.logitPositions = logitPositions
        self.losses = losses
        self.entropy = entropy
        self.hiddenStates = hiddenStates
    }
}

public struct ForwardResult {
    /// [B, P, V] for the requested positions.
    public var logits: [Float] = []
    /// [B, T−1] in nats.
    public var losses: [Float] = []
    /// [L, B, H, T] in bits.
    public var entropy: [Float] = []
    /// [L+1, B, T, D].
    public var hidden: [Float] = []
}

public enum EngineError: Error, CustomStringConvertible, Equatable {
    case badTokens(String)
    case badTemperatures(String)
    case unsupportedModel(String)

    public var description: String {
        switch self {
        case .badTokens(let d): return "invalid tokens: \(d)"
        case .badTemperatures(let d): return "invalid temperatures: \(d)"
        case .unsupportedModel(let d): return "unsupported model: \(d)"
        }
    }
}

/// A Llama-family decoder on the CPU: pre-RMSNorm blocks, grouped-query attention with an
/// optional per-head q/k RMSNorm, RoPE or none per layer, per-head temperatures, SwiGLU MLP,
/// final norm and LM head (tied or not), biases where the config has them.
///
/// Weights are read from the checkpoint layer by layer for every forward pass (`.streaming`,
/// about one layer in F32 beyond the stored model) or kept in F32 (`.resident`).
public final class LlamaModel {
    public enum WeightPolicy { case streaming, resident }

    public let config: ModelConfig
    public let reader: WeightReader
    public let rope: Rope
    public var threads: Int
    let policy: WeightPolicy
    let embedding: [Float]      // [V, D]
    let finalNorm: [Float]      // [D]
    let lmHead: [Float]?        // [V, D]; nil when tied to the embedding
    var residentLayers: [LayerWeights] = []

    public init(store: any TensorStore, config: ModelConfig, policy: WeightPolicy = .streaming, threads: Int = 2) throws {
        if config.modelType == "cohere2" || config.modelType == "llama4" {
            throw EngineError.unsupportedModel("\(config.modelType) blocks are not Llama blocks (parallel attention/MoE); nopekit runs llama, mistral, qwen2, qwen3, smollm3")
        }
        self.config = config
        reader = WeightReader(store: store, config: config)
        rope = Rope(config: config)
        self.threads = threads
        self.policy = policy
        let D = config.hidden, V = config.vocab
        embedding = try reader.read(reader.names.embedding, shape: [V, D])
        finalNorm = try reader.read(reader.names.finalNorm, shape: [D])
        lmHead = config.tiedEmbeddings && !store.contains(reader.names.lmHead) ? nil : try reader.read(reader.names.lmHead, shape: [V, D])
        if policy == .resident { residentLayers = try (0..<config.layers).map { try reader.layer($0) } }
    }

    func weights(_ l: Int) throws -> LayerWeights { policy == .resident ? residentLayers[l] : try reader.layer(l) }

    /// Runs the model over `request.tokens`.
    public func forward(_ request: ForwardRequest) throws -> ForwardResult {
        let c = config
        let B = request.tokens.count
        guard B > 0, let T = request.tokens.first?.count, T > 0, request.tokens.allSatisfy({ $0.count == T }) else {
            throw EngineError.badTokens("need one or more sequences of the same non-zero length")
        }
        if let bad = request.tokens.joined().first(where: { $0 < 0 || $0 >= c.vocab }) {
            throw EngineError.badTokens("token id \(bad) outside the vocabulary of \(c.vocab)")
        }
        let lambdas = try resolveTemperatures(request.temperatures)
        let D = c.hidden, E = c.headDim, H = c.heads, G = c.kvHeads, F = c.intermediate, N = B * T, V = c.vocab
        let eps = Float(c.normEps)
        var result = ForwardResult()

        // x [N, D] = embedding rows
        var x = [Float](repeating: 0, count: N * D)
        for (b, seq) in request.tokens.enumerated() {
            for (t, id) in seq.enumerated() { x[((b * T) + t) * D..<((b * T) + t + 1) * D] = embedding[id * D..<(id + 1) * D] }
        }
        if request.hiddenStates { result.hidden += x }
        if request.entropy { result.entropy = [Float](repeating: 0, count: c.layers * B * H * T) }

        let tables = rope.tables(count: T)
        var h = [Float](repeating: 0, count: N * D)
        var q = [Float](repeating: 0, count: N * H * E), k = [Float](repeating: 0, count: N * G * E), v = k
        var att = [Float](repeating: 0, count: N * H * E)
        var proj = [Float](repeating: 0, count: N * D)
        // The MLP runs over chunks of rows, so its [rows, F] buffers do not grow with T.
        let mlpRows = min(N, 512)
        var gate = [Float](repeating: 0, count: mlpRows * F), up = gate

        for l in 0..<c.layers {
            let w = try weights(l)
            // h = rmsnorm(x) · w_attn_norm
            Kernels.rmsnorm(&h, x, w.attnNorm, rows: N, width: D, eps: eps)
            // q [N, H·E], k, v [N, G·E]
            Kernels.matmul(&q, h, w.wq, bias: w.bq, rows: N, in: D, out: H * E)
            Kernels.matmul(&k, h, w.wk, bias: w.bk, rows: N, in: D, out: G * E)
            Kernels.matmul(&v, h, w.wv, bias: w.bv, rows: N, in: D, out: G * E)
            let shape = Attention.Shape(length: T, heads: H, kvHeads: G, headDim: E)
            let entropyBase = (l * B) * H * T
            q.withUnsafeMutableBufferPointer { qp in
                k.withUnsafeMutableBufferPointer { kp in
                    // Per-head q/k RMSNorm (in place, row by row), then RoPE on RoPE layers.
                    if let qn = w.qNorm { Kernels.rmsnorm(qp.baseAddress!, qp.baseAddress!, qn, rows: N * H, width: E, eps: eps) }
                    if let kn = w.kNorm { Kernels.rmsnorm(kp.baseAddress!, kp.baseAddress!, kn, rows: N * G, width: E, eps: eps) }
                    if c.positions[l] == .rope {
                        for b in 0..<B {
                            rope.apply(qp.baseAddress! + b * T * H * E, rows: T, heads: H, headDim: E, start: 0, cos: tables.cos, sin: tables.sin)
                            rope.apply(kp.baseAddress! + b * T * G * E, rows: T, heads: G, headDim: E, start: 0, cos: tables.cos, sin: tables.sin)
                        }
                    }
                    v.withUnsafeBufferPointer { vp in
                        att.withUnsafeMutableBufferPointer { op in
                            result.entropy.withUnsafeMutableBufferPointer { ep in
                                for b in 0..<B {
                                    Attention.tiled(q: qp.baseAddress! + b * T * H * E, k: kp.baseAddress! + b * T * G * E,
                                                    v: vp.baseAddress! + b * T * G * E, out: op.baseAddress! + b * T * H * E,
                                                    entropy: request.entropy ? ep.baseAddress! + entropyBase + b * H * T : nil,
                                                    lambda: lambdas[l], shape: shape, threads: threads)
                                }
                            }
                        }
                    }
                }
            }
            // x += att · w_oᵀ
            Kernels.matmul(&proj, att, w.wo, bias: w.bo, rows: N, in: H * E, out: D)
            Kernels.add(&x, proj, count: N * D)
            // x += down(silu(gate(h2)) · up(h2)),  h2 = rmsnorm(x) · w_mlp_norm
            Kernels.rmsnorm(&h, x, w.mlpNorm, rows: N, width: D, eps: eps)
            h.withUnsafeBufferPointer { hp in
                proj.withUnsafeMutableBufferPointer { pp in
                    var r0 = 0
                    while r0 < N {
                        let rows = min(mlpRows, N - r0)
                        Kernels.matmul(&gate, hp.baseAddress! + r0 * D, w.wGate, bias: w.bGate, rows: rows, in: D, out: F)
                        Kernels.matmul(&up, hp.baseAddress! + r0 * D, w.wUp, bias: w.bUp, rows: rows, in: D, out: F)
                        Kernels.swiglu(&gate, up, count: rows * F)
                        Kernels.matmul(pp.baseAddress! + r0 * D, gate, w.wDown, bias: w.bDown, rows: rows, in: F, out: D)
                        r0 += rows
                    }
                }
            }
            Kernels.add(&x, proj, count: N * D)
            if request.hiddenStates { result.hidden += x }
        }

        // Final norm, then the LM head over chunks of positions (never [N, V] at once).
        Kernels.rmsnorm(&h, x, finalNorm, rows: N, width: D, eps: eps)
        let head = lmHead ?? embedding
        let wanted = Set(request.logitPositions)
        if !request.logitPositions.isEmpty { result.logits = [Float](repeating: 0, count: B * request.logitPositions.count * V) }
        if request.losses { result.losses = [Float](repeating: 0, count: B * (T - 1)) }
        let chunk = max(1, min(N, (64 << 20) / (4 * V)))
        var logits = [Float](repeating: 0, count: chunk * V)
        var start = 0
        while start < N {
            let rows = min(chunk, N - start)
            let needed = (start..<(start + rows)).contains { r in wanted.contains(r % T) || (request.losses && r % T < T - 1) }
            if needed {
                h.withUnsafeBufferPointer { hb in
                    Kernels.matmul(&logits, hb.baseAddress! + start * D, head, bias: nil, rows: rows, in: D, out: V)
                }
                for r in 0..<rows {
                    let n = start + r, b = n / T, t = n % T
                    let row = logits[(r * V)..<((r + 1) * V)]
                    if let p = request.logitPositions.firstIndex(of: t) {
                        result.logits.replaceSubrange(((b * request.logitPositions.count + p) * V)..<((b * request.logitPositions.count + p + 1) * V), with: row)
                    }
                    if request.losses && t < T - 1 {
                        result.losses[b * (T - 1) + t] = Self.crossEntropy(row, target: request.tokens[b][t + 1])
                    }
                }
            }
            start += rows
        }
        return result
    }

    /// −log softmax(row)[target], in Double for the sum.
    static func crossEntropy(_ row: ArraySlice<Float>, target: Int) -> Float {
        let m = row.max() ?? 0
        var sum = 0.0
        for v in row { sum += Foundation.exp(Double(v - m)) }
        return Float(log(sum) + Double(m) - Double(row[row.startIndex + target]))
    }

    func resolveTemperatures(_ t: [[Float]?]?) throws -> [[Float]] {
        let ones = [Float](repeating: 1, count: config.heads)
        guard let t else { return Array(repeating: ones, count: config.layers) }
        guard t.count == config.layers else {
            throw EngineError.badTemperatures("\(t.count) layers given, the model has \(config.layers)")
        }
        return try t.enumerated().map { l, row in
            guard let row else { return ones }
            guard row.count == config.heads else {
                throw EngineError.badTemperatures("layer \(l) has \(row.count) values, the model has \(config.heads) heads")
            }
            guard row.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw EngineError.badTemperatures("layer \(l): temperatures must be finite and positive")
            }
            return row
        }
    }
}
