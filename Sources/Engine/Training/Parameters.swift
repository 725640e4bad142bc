import Checkpoints
import Foundation

/// Every weight of a model in F32, mutable (training) and addressable by HF name (saving,
/// the optimiser, gradient checks). Gradients use the same structure.
public struct Parameters: ModelWeightSource {
    public var config: ModelConfig
    public var embedding: [Float]          // [V, D]
    public var layers: [LayerWeights]
    public var finalNorm: [Float]          // [D]
    public var lmHead: [Float]?            // [V, D]; nil when tied

    public init(config: ModelConfig, embedding: [Float], layers: [LayerWeights], finalNorm: [Float], lmHead: [Float]?) {
        self.config = config
        self.embedding = embedding
        self.layers = layers
        self.finalNorm = finalNorm
        self.lmHead = lmHead
    }

    /// All weights read from a checkpoint.
    public init(store: any TensorStore, config: ModelConfig) throws {
        let reader = WeightReader(store: store, config: config)
        self.config = config
        embedding = try reader.read(reader.names.embedding, shape: [config.vocab, config.hidden])
        finalNorm = try reader.read(reader.names.finalNorm, shape: [config.hidden])
        lmHead = config.tiedEmbeddings && !store.contains(reader.names.lmHead) ? nil
            : try reader.read(reader.names.lmHead, shape: [config.vocab, config.hidden])
        layers = try (0..<config.layers).map { try reader.layer($0) }
    }

    public func layerWeights(_ l: Int) throws -> LayerWeights { layers[l] }

    /// Zeros shaped like `other` (gradient buffers).
    public init(zerosLike other: Parameters) {
        config = other.config
        embedding = Array(repeating: 0, count: other.embedding.count)
        finalNorm = Array(repeating: 0, count: other.finalNorm.count)
        lmHead = other.lmHead.map { Array(repeating: 0, count: $0.count) }
        layers = other.layers.map { l in
            func z(_ a: [Float]) -> [Float] { Array(repeating: 0, count: a.count) }
            return LayerWeights(attnNorm: z(l.attnNorm), wq: z(l.wq), wk: z(l.wk), wv: z(l.wv), wo: z(l.wo),
                                bq: l.bq.map(z), bk: l.bk.map(z), bv: l.bv.map(z), bo: l.bo.map(z),
                                qNorm: l.qNorm.map(z), kNorm: l.kNorm.map(z), mlpNorm: z(l.mlpNorm),
                                wGate: z(l.wGate), wUp: z(l.wUp), wDown: z(l.wDown),
                                bGate: l.bGate.map(z), bUp: l.bUp.map(z), bDown: l.bDown.map(z))
        }
    }

    /// HF names and shapes in a fixed order (embedding, layers, norm, head); a layer's biases
    /// and q/k norms are listed where it has them.
    public var tensorList: [(name: String, shape: [Int])] {
        let c = config, D = c.hidden, E = c.headDim, H = c.heads, G = c.kvHeads, F = c.intermediate
        var list: [(String, [Int])] = [("model.embed_tokens.weight", [c.vocab, D])]
        for (l, w) in layers.enumerated() {
            let p = "model.layers.\(l)."
            list += [(p + "input_layernorm.weight", [D]), (p + "self_attn.q_proj.weight", [H * E, D]),
                     (p + "self_attn.k_proj.weight", [G * E, D]), (p + "self_attn.v_proj.weight", [G * E, D]),
                     (p + "self_attn.o_proj.weight", [D, H * E]), (p + "post_attention_layernorm.weight", [D]),
                     (p + "mlp.gate_proj.weight", [F, D]), (p + "mlp.up_proj.weight", [F, D]), (p + "mlp.down_proj.weight", [D, F])]
            for (part, path, shape) in Self.optionalParts(E: E, H: H, G: G, D: D, F: F) where w[keyPath: path] != nil {
                list.append((p + part, shape))
            }
        }
        list.append(("model.norm.weight", [D]))
        if lmHead != nil { list.append(("lm_head.weight", [c.vocab, D])) }
        return list
    }

    /// The tensors a layer may or may not have: HF name, field, shape.
    static func optionalParts(E: Int, H: Int, G: Int, D: Int, F: Int) -> [(String, WritableKeyPath<LayerWeights, [Float]?>, [Int])] {
        [("self_attn.q_proj.bias", \.bq, [H * E]), ("self_attn.k_proj.bias", \.bk, [G * E]), ("self_attn.v_proj.bias", \.bv, [G * E]),
         ("self_attn.o_proj.bias", \.bo, [D]), ("self_attn.q_norm.weight", \.qNorm, [E]), ("self_attn.k_norm.weight", \.kNorm, [E]),
         ("mlp.gate_proj.bias", \.bGate, [F]), ("mlp.up_proj.bias", \.bUp, [F]), ("mlp.down_proj.bias", \.bDown, [D])]
    }

    /// Reads or writes the tensor called `name` through `body`.
    public mutating func withTensor<R>(_ name: String, _ body: (inout [Float]) throws -> R) rethrows -> R? {
        switch name {
        case "model.embed_tokens.weight": return try body(&embedding)
        case "model.norm.weight": return try body(&finalNorm)
        case "lm_head.weight":
            guard lmHead != nil else { return nil }
            return try body(&lmHead!)
        default: break
        }
        let parts = name.split(separator: ".")
        guard parts.count >= 5, parts[0] == "model", parts[1] == "layers", let l = Int(parts[2]), layers.indices.contains(l) else { return nil }
        let part = parts[3...].joined(separator: ".")
        switch part {
        case "input_layernorm.weight": return try body(&layers[l].attnNorm)
        case "self_attn.q_proj.weight": return try body(&layers[l].wq)
        case "self_attn.k_proj.weight": return try body(&layers[l].wk)
        case "self_attn.v_proj.weight": return try body(&layers[l].wv)
        case "self_attn.o_proj.weight": return try body(&layers[l].wo)
        case "post_attention_layernorm.weight": return try body(&layers[l].mlpNorm)
        case "mlp.gate_proj.weight": return try body(&layers[l].wGate)
        case "mlp.up_proj.weight": return try body(&layers[l].wUp)
        case "mlp.down_proj.weight": return try body(&layers[l].wDown)
        default:
            guard let (_, path, _) = Self.optionalParts(E: 0, H: 0, G: 0, D: 0, F: 0).first(where: { $0.0 == part }),
                  layers[l][keyPath: path] != nil else { return nil }
            return try body(&layers[l][keyPath: path]!)
        }
    }

    public func tensor(_ name: String) -> [Float]? {
        var copy = self
        return copy.withTensor(name) { $0 }
    }
}

/// A `TensorStore` over `Parameters` (HF names, F32), so the inference engine and the writers
/// run on weights that live in memory (training, tests).
public final class ParameterStore: TensorStore {
    public let parameters: Parameters
    public let tensors: [TensorInfo]
    private let byName: [String: TensorInfo]
    public var sourcePath: String { "in-memory parameters" }

    public init(_ p: Parameters) {
        parameters = p
        tensors = p.tensorList.map { TensorInfo(name: $0.name, dtype: .f32, shape: $0.shape, byteCount: 4 * $0.shape.reduce(1, *), file: "memory", fileOffset: 0) }
        byName = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, $0) })
    }

    public func lookup(_ name: String) -> TensorInfo? { byName[name] }

    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let t = parameters.tensor(name) else { throw TensorStoreError.tensorNotFound(name: name, source: sourcePath) }
        return try t.withUnsafeBytes(body)
    }

    public func releasePages(_ name: String, range: Range<Int>) {}
}
