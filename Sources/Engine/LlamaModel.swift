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
    /// Rows of a sequence processed together within a layer (bounds every buffer but the
    /// residual stream and K/V).
    public var rowChunk = 512
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
        try BLASRuntime.exclusive { try forwardPass(request) }
    }

    func forwardPass(_ request: ForwardRequest) throws -> ForwardResult {
        BLASRuntime.setThreadCount(threads)
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
        // Each layer runs over row chunks of one sequence at a time: normalise, project, rotate
        // and store the chunk's keys and values, attend from the chunk's queries to every key
        // so far, then the output projection and the MLP. Only the residual stream x [N, D] and
        // one sequence's K/V [T, G·E] grow with T; every other buffer is one chunk.
        let R = min(T, max(1, rowChunk))
        var k = [Float](repeating: 0, count: T * G * E), v = k
        var h = [Float](repeating: 0, count: R * D), q = [Float](repeating: 0, count: R * H * E), att = q
        var proj = [Float](repeating: 0, count: R * D)
        var gate = [Float](repeating: 0, count: R * F), up = gate
        let shape = Attention.Shape(length: T, heads: H, kvHeads: G, headDim: E)

        for l in 0..<c.layers {
            let w = try weights(l)
            for b in 0..<B {
                var r0 = 0
                while r0 < T {
                    let rows = min(R, T - r0)
                    let xRow = (b * T + r0) * D
                    x.withUnsafeMutableBufferPointer { xp in
                        let xc = xp.baseAddress! + xRow
                        // h = rmsnorm(x) · w_attn_norm; q [rows, H·E], k and v rows r0… [rows, G·E]
                        Kernels.rmsnorm(&h, xc, w.attnNorm, rows: rows, width: D, eps: eps)
                        k.withUnsafeMutableBufferPointer { kp in
                            v.withUnsafeMutableBufferPointer { vp in
                                q.withUnsafeMutableBufferPointer { qp in
                                    let kc = kp.baseAddress! + r0 * G * E, vc = vp.baseAddress! + r0 * G * E
                                    Kernels.matmul(qp.baseAddress!, h, w.wq, bias: w.bq, rows: rows, in: D, out: H * E)
                                    Kernels.matmul(kc, h, w.wk, bias: w.bk, rows: rows, in: D, out: G * E)
                                    Kernels.matmul(vc, h, w.wv, bias: w.bv, rows: rows, in: D, out: G * E)
                                    // Per-head q/k RMSNorm (in place), then RoPE on RoPE layers.
                                    if let qn = w.qNorm { Kernels.rmsnorm(qp.baseAddress!, qp.baseAddress!, qn, rows: rows * H, width: E, eps: eps) }
                                    if let kn = w.kNorm { Kernels.rmsnorm(kc, kc, kn, rows: rows * G, width: E, eps: eps) }
                                    if c.positions[l] == .rope {
                                        rope.apply(qp.baseAddress!, rows: rows, heads: H, headDim: E, start: r0, cos: tables.cos, sin: tables.sin)
                                        rope.apply(kc, rows: rows, heads: G, headDim: E, start: r0, cos: tables.cos, sin: tables.sin)
                                    }
                                    att.withUnsafeMutableBufferPointer { op in
                                        result.entropy.withUnsafeMutableBufferPointer { ep in
                                            Attention.tiled(q: qp.baseAddress!, k: kp.baseAddress!, v: vp.baseAddress!, out: op.baseAddress!,
                                                            entropy: request.entropy ? ep.baseAddress! + ((l * B) + b) * H * T : nil,
                                                            lambda: lambdas[l], shape: shape, rows: r0..<(r0 + rows), threads: threads)
                                        }
                                    }
                                }
                            }
                        }
                        // x += att · w_oᵀ
                        Kernels.matmul(&proj, att, w.wo, bias: w.bo, rows: rows, in: H * E, out: D)
                        Kernels.add(xc, proj, count: rows * D)
                        // x += down(silu(gate(h2)) · up(h2)),  h2 = rmsnorm(x) · w_mlp_norm
                        Kernels.rmsnorm(&h, xc, w.mlpNorm, rows: rows, width: D, eps: eps)
                        Kernels.matmul(&gate, h, w.wGate, bias: w.bGate, rows: rows, in: D, out: F)
                        Kernels.matmul(&up, h, w.wUp, bias: w.bUp, rows: rows, in: D, out: F)
                        Kernels.swiglu(&gate, up, count: rows * F)
                        Kernels.matmul(&proj, gate, w.wDown, bias: w.bDown, rows: rows, in: F, out: D)
                        Kernels.add(xc, proj, count: rows * D)
                    }
                    r0 += rows
                }
            }
            if request.hiddenStates { result.hidden += x }
        }

        // Final norm (into x itself: the residual stream is not needed any more), then the LM
        // head over chunks of positions (never [N, V] at once).
        x.withUnsafeMutableBufferPointer { xp in
            Kernels.rmsnorm(xp.baseAddress!, xp.baseAddress!, finalNorm, rows: N, width: D, eps: eps)
        }
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
                x.withUnsafeBufferPointer { hb in
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
