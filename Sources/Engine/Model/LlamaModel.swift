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

/// A Llama-family decoder on the CPU: pre-RMSNorm blocks, grouped-query attention with an
/// optional per-head q/k RMSNorm, RoPE or none per layer, per-head temperatures, SwiGLU MLP,
/// final norm and LM head (tied or not), biases where the config has them.
///
/// Weights are read from the checkpoint layer by layer for every forward pass (`.streaming`,
/// about one layer in F32 beyond the stored model) or kept in F32 (`.resident`). The layer
/// itself is `Layer.forward`, which training and the temperature search run too.
public final class LlamaModel: ModelWeightSource {
    public enum WeightPolicy { case streaming, resident }

    /// llama.cpp's tensor of per-dimension RoPE frequency divisors.
    public static let ropeFrequencyFactors = "rope_freqs.weight"

    public let config: ModelConfig
    public let reader: WeightReader
    public let rope: Rope
    public var threads: Int
    /// Rows of a sequence processed together within a layer (bounds every buffer but the
    /// residual stream and K/V).
    public var rowChunk = 512
    public let policy: WeightPolicy
    public let embedding: [Float]      // [V, D]
    public let finalNorm: [Float]      // [D]
    public let lmHead: [Float]?        // [V, D]; nil when tied to the embedding
    var residentLayers: [LayerWeights] = []

    public init(store: any TensorStore, config: ModelConfig, policy: WeightPolicy = .streaming, threads: Int = 2) throws {
        if config.modelType == "cohere2" || config.modelType == "llama4" {
            throw EngineError.unsupportedModel("\(config.modelType) blocks are not Llama blocks (parallel attention/MoE); nopekit runs llama, mistral, qwen2, qwen3, smollm3")
        }
        if store.contains(Self.ropeFrequencyFactors) && config.positions.contains(.rope) {
            throw EngineError.unsupportedModel("\(Self.ropeFrequencyFactors) (llama.cpp's per-dimension RoPE factors, as in Llama 3.1 GGUF files) is not implemented; nopekit refuses rather than run RoPE without it (--position none if every layer is NoPE)")
        }
        try config.check(against: store)
        self.config = config
        reader = WeightReader(store: store, config: config)
        rope = Rope(config: config)
        self.threads = threads
        self.policy = policy
        embedding = try reader.read(.embedding)
        finalNorm = try reader.read(.finalNorm)
        lmHead = try reader.lmHead()
        if policy == .resident { residentLayers = try (0..<config.layers).map { try reader.layer($0) } }
    }

    public func layerWeights(_ l: Int) throws -> LayerWeights { policy == .resident ? residentLayers[l] : try reader.layer(l) }

    /// Runs the model over `request.tokens`.
    public func forward(_ request: ForwardRequest) throws -> ForwardResult {
        try BLASRuntime.exclusive { try forwardPass(request) }
    }

    func forwardPass(_ request: ForwardRequest) throws -> ForwardResult {
        BLASRuntime.setThreadCount(threads)
        let c = config
        let (T, x) = try Embedding.gather(request.tokens, table: embedding, config: c)
        let lambdas = try Temperatures.resolve(request.temperatures, config: c)
        let B = request.tokens.count, D = c.hidden, H = c.heads, N = B * T
        var result = ForwardResult()
        if request.hiddenStates { result.hidden.reserveCapacity((c.layers + 1) * N * D) }
        func keepHidden() { if request.hiddenStates { result.hidden += UnsafeBufferPointer(start: x.pointer, count: N * D) } }
        keepHidden()
        let entropy = FloatBuffer(request.entropy ? c.layers * B * H * T : 0)

        let context = LayerContext(config: c, rope: rope, length: T, threads: threads, rowChunk: rowChunk)
        for l in 0..<c.layers {
            Layer.forward(try layerWeights(l), layer: l, x: x.pointer, sequences: B, context: context, lambda: lambdas[l],
                          entropy: request.entropy ? entropy.pointer + l * B * H * T : nil)
            keepHidden()
        }
        if request.entropy { result.entropy = entropy.array }

        let (logits, losses) = head(x, tokens: request.tokens, length: T, logitPositions: request.logitPositions, losses: request.losses)
        if !request.logitPositions.isEmpty { result.logits = logits }
        if request.losses { result.losses = losses }
        return result
    }

    /// Final norm (into x itself: the residual stream is not needed any more), then the head:
    /// logits [B, P, V] of `logitPositions` and, if asked, losses [B, T−1].
    func head(_ x: FloatBuffer, tokens: [[Int]], length T: Int, logitPositions: [Int], losses wantLosses: Bool) -> ([Float], [Float]) {
        let c = config, B = tokens.count, D = c.hidden, V = c.vocab
        Kernels.rmsnorm(x.pointer, x.pointer, finalNorm, rows: B * T, width: D, eps: Float(c.normEps))
        let logits = FloatBuffer(B * logitPositions.count * V)
        let losses = FloatBuffer(wantLosses ? B * (T - 1) : 0)
        LMHead(head: headWeights, vocab: V, width: D)
            .run(hf: x.pointer, tokens: tokens, length: T, logitPositions: logitPositions,
                 logits: logits.pointer, losses: wantLosses ? losses.pointer : nil)
        return (logitPositions.isEmpty ? [] : logits.array, wantLosses ? losses.array : [])
    }

    // MARK: Incremental decoding

    /// An empty key/value cache for `sequences` sequences of up to `capacity` positions.
    public func makeCache(sequences: Int = 1, capacity: Int) -> KVCache {
        KVCache(config: config, rope: rope, sequences: sequences, capacity: capacity, threads: threads, rowChunk: rowChunk)
    }

    /// Appends `tokens` (B sequences of n new tokens each, B = the cache's) at positions
    /// `cache.length…` and returns the logits [B, V] of the last new position. The layers are
    /// `Layer.forward` over the new rows only, attending to the cached keys and values: a
    /// prompt is one call (the prefill), each generated token one more.
    public func decode(_ tokens: [[Int]], cache: KVCache, temperatures: [[Float]?]? = nil) throws -> [Float] {
        guard tokens.count == cache.sequences else {
            throw EngineError.badTokens("\(tokens.count) sequences given to a cache of \(cache.sequences)")
        }
        let n = tokens.first?.count ?? 0
        guard cache.length + n <= cache.capacity else {
            throw EngineError.badTokens("\(cache.length) + \(n) positions exceed the cache's capacity of \(cache.capacity)")
        }
        return try BLASRuntime.exclusive {
            BLASRuntime.setThreadCount(threads)
            let (_, x) = try Embedding.gather(tokens, table: embedding, config: config)
            let lambdas = try Temperatures.resolve(temperatures, config: config)
            for l in 0..<config.layers {
                Layer.forward(try layerWeights(l), layer: l, x: x.pointer, sequences: cache.sequences, context: cache.context,
                              lambda: lambdas[l], entropy: nil, cache: cache.slot(layer: l, adding: n))
            }
            cache.length += n
            return head(x, tokens: tokens, length: n, logitPositions: [n - 1], losses: false).0
        }
    }
}
