import Checkpoints
import Foundation

/// F32 weights of one decoder layer (nn.Linear layout `[out, in]`), read from a checkpoint.
public struct LayerWeights {
    public var attnNorm: [Float]                 // [D]
    public var wq: [Float], wk: [Float], wv: [Float], wo: [Float]   // [H·E, D], [G·E, D], [G·E, D], [D, H·E]
    public var bq: [Float]?, bk: [Float]?, bv: [Float]?, bo: [Float]?
    public var qNorm: [Float]?, kNorm: [Float]?  // [E]
    public var mlpNorm: [Float]                  // [D]
    public var wGate: [Float], wUp: [Float], wDown: [Float]        // [F, D], [F, D], [D, F]
    public var bGate: [Float]?, bUp: [Float]?, bDown: [Float]?

    public init(attnNorm: [Float], wq: [Float], wk: [Float], wv: [Float], wo: [Float], bq: [Float]?, bk: [Float]?, bv: [Float]?,
                bo: [Float]?, qNorm: [Float]?, kNorm: [Float]?, mlpNorm: [Float], wGate: [Float], wUp: [Float], wDown: [Float],
                bGate: [Float]?, bUp: [Float]?, bDown: [Float]?) {
        self.attnNorm = attnNorm; self.wq = wq; self.wk = wk; self.wv = wv; self.wo = wo
        self.bq = bq; self.bk = bk; self.bv = bv; self.bo = bo; self.qNorm = qNorm; self.kNorm = kNorm
        self.mlpNorm = mlpNorm; self.wGate = wGate; self.wUp = wUp; self.wDown = wDown
        self.bGate = bGate; self.bUp = bUp; self.bDown = bDown
    }
}

/// Where each weight lives in a checkpoint: Hugging Face names, or llama.cpp's GGUF names (whose
/// Q/K rows llama.cpp's converter permuted, so they are permuted back here).
public struct WeightNames {
    public enum Convention { case huggingFace, gguf }
    public let convention: Convention

    public static func detect(_ store: any TensorStore) -> WeightNames {
        WeightNames(convention: store.contains("token_embd.weight") ? .gguf : .huggingFace)
    }

    public var embedding: String { convention == .gguf ? "token_embd.weight" : "model.embed_tokens.weight" }
    public var finalNorm: String { convention == .gguf ? "output_norm.weight" : "model.norm.weight" }
    public var lmHead: String { convention == .gguf ? "output.weight" : "lm_head.weight" }

    public func layer(_ l: Int, _ part: Part) -> String {
        switch convention {
        case .huggingFace:
            let p = "model.layers.\(l)."
            switch part {
            case .attnNorm: return p + "input_layernorm.weight"
            case .q(let bias): return p + "self_attn.q_proj." + (bias ? "bias" : "weight")
            case .k(let bias): return p + "self_attn.k_proj." + (bias ? "bias" : "weight")
            case .v(let bias): return p + "self_attn.v_proj." + (bias ? "bias" : "weight")
            case .o(let bias): return p + "self_attn.o_proj." + (bias ? "bias" : "weight")
            case .qNorm: return p + "self_attn.q_norm.weight"
            case .kNorm: return p + "self_attn.k_norm.weight"
            case .mlpNorm: return p + "post_attention_layernorm.weight"
            case .gate(let bias): return p + "mlp.gate_proj." + (bias ? "bias" : "weight")
            case .up(let bias): return p + "mlp.up_proj." + (bias ? "bias" : "weight")
            case .down(let bias): return p + "mlp.down_proj." + (bias ? "bias" : "weight")
            }
        case .gguf:
            let p = "blk.\(l)."
            switch part {
            case .attnNorm: return p + "attn_norm.weight"
            case .q(let bias): return p + "attn_q." + (bias ? "bias" : "weight")
            case .k(let bias): return p + "attn_k." + (bias ? "bias" : "weight")
            case .v(let bias): return p + "attn_v." + (bias ? "bias" : "weight")
            case .o(let bias): return p + "attn_output." + (bias ? "bias" : "weight")
            case .qNorm: return p + "attn_q_norm.weight"
            case .kNorm: return p + "attn_k_norm.weight"
            case .mlpNorm: return p + "ffn_norm.weight"
            case .gate(let bias): return p + "ffn_gate." + (bias ? "bias" : "weight")
            case .up(let bias): return p + "ffn_up." + (bias ? "bias" : "weight")
            case .down(let bias): return p + "ffn_down." + (bias ? "bias" : "weight")
            }
        }
    }

    public enum Part { case attnNorm, q(bias: Bool), k(bias: Bool), v(bias: Bool), o(bias: Bool), qNorm, kNorm, mlpNorm, gate(bias: Bool), up(bias: Bool), down(bias: Bool) }
}

public enum WeightError: Error, CustomStringConvertible, Equatable {
    case missing(source: String, tensor: String)
    case wrongShape(source: String, tensor: String, expected: [Int], actual: [Int])

    public var description: String {
        switch self {
        case .missing(let s, let t): return "\(s): tensor '\(t)' is missing; the checkpoint does not match its config"
        case .wrongShape(let s, let t, let e, let a): return "\(s): tensor '\(t)' has shape \(a), the config implies \(e)"
        }
    }
}

/// Reads the F32 weights the engine needs, layer by layer, checking every shape against the config.
public struct WeightReader {
    public let store: any TensorStore
    public let config: ModelConfig
    public let names: WeightNames
    /// llama.cpp permutes Q/K rows of `llama`/`smollm3` GGUF files (HF rotate_half → adjacent pairs).
    let unpermuteQK: Bool

    public init(store: any TensorStore, config: ModelConfig) {
        self.store = store
        self.config = config
        names = WeightNames.detect(store)
        unpermuteQK = names.convention == .gguf && ["llama", "smollm3", "qwen2", "qwen3", "mistral"].contains(config.modelType)
    }

    public func read(_ name: String, shape: [Int]) throws -> [Float] {
        guard let info = store.lookup(name) else { throw WeightError.missing(source: store.sourcePath, tensor: name) }
        guard info.shape == shape || (info.shape.reduce(1, *) == shape.reduce(1, *) && shape.count == 1) else {
            throw WeightError.wrongShape(source: store.sourcePath, tensor: name, expected: shape, actual: info.shape)
        }
        let values = try store.readF32(name)
        store.releasePages(name)
        return values
    }

    func optional(_ name: String, shape: [Int], present: Bool) throws -> [Float]? {
        guard present || store.contains(name) else { return nil }
        return try read(name, shape: shape)
    }

    /// Undoes llama.cpp's per-head row permutation: new[h·E + 2i + j] = old[h·E + j·E/2 + i].
    func unpermute(_ w: [Float], heads: Int, rowWidth: Int) -> [Float] {
        guard unpermuteQK else { return w }
        let E = config.headDim
        var out = w
        for h in 0..<heads {
            for i in 0..<(E / 2) {
                for j in 0..<2 {
                    let from = h * E + 2 * i + j, to = h * E + j * E / 2 + i
                    for c in 0..<rowWidth { out[to * rowWidth + c] = w[from * rowWidth + c] }
                }
            }
        }
        return out
    }

    public func layer(_ l: Int) throws -> LayerWeights {
        let c = config, D = c.hidden, E = c.headDim, H = c.heads, G = c.kvHeads, F = c.intermediate
        let n = names
        return LayerWeights(
            attnNorm: try read(n.layer(l, .attnNorm), shape: [D]),
            wq: unpermute(try read(n.layer(l, .q(bias: false)), shape: [H * E, D]), heads: H, rowWidth: D),
            wk: unpermute(try read(n.layer(l, .k(bias: false)), shape: [G * E, D]), heads: G, rowWidth: D),
            wv: try read(n.layer(l, .v(bias: false)), shape: [G * E, D]),
            wo: try read(n.layer(l, .o(bias: false)), shape: [D, H * E]),
            bq: try optional(n.layer(l, .q(bias: true)), shape: [H * E], present: c.attentionBias).map { unpermute($0, heads: H, rowWidth: 1) },
            bk: try optional(n.layer(l, .k(bias: true)), shape: [G * E], present: c.attentionBias).map { unpermute($0, heads: G, rowWidth: 1) },
            bv: try optional(n.layer(l, .v(bias: true)), shape: [G * E], present: c.attentionBias),
            bo: try optional(n.layer(l, .o(bias: true)), shape: [D], present: false),
            qNorm: try optional(n.layer(l, .qNorm), shape: [E], present: c.qkNorm),
            kNorm: try optional(n.layer(l, .kNorm), shape: [E], present: c.qkNorm),
            mlpNorm: try read(n.layer(l, .mlpNorm), shape: [D]),
            wGate: try read(n.layer(l, .gate(bias: false)), shape: [F, D]),
            wUp: try read(n.layer(l, .up(bias: false)), shape: [F, D]),
            wDown: try read(n.layer(l, .down(bias: false)), shape: [D, F]),
            bGate: try optional(n.layer(l, .gate(bias: true)), shape: [F], present: c.mlpBias),
            bUp: try optional(n.layer(l, .up(bias: true)), shape: [F], present: c.mlpBias),
            bDown: try optional(n.layer(l, .down(bias: true)), shape: [D], present: c.mlpBias))
    }
}
