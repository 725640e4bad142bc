/// The one table of Llama-family tensor names, Hugging Face ↔ GGUF (llama.cpp), with the shape
/// each tensor has for a config. The engine reads weights through it, the bake finds the rows it
/// scales through it, and the converter renames with it; nothing else spells a tensor name.
///
/// Shapes are HF order (`[out, in]`, outermost first) in both conventions: a GGUF file's reversed
/// `ne` order is turned around at the format boundary (`GGUFHeader`), not here.

/// Which names a checkpoint uses.
public enum NameConvention: String, Sendable, CaseIterable {
    /// `model.embed_tokens.weight`, `model.layers.N.self_attn.q_proj.weight`, …
    case huggingFace
    /// `token_embd.weight`, `blk.N.attn_q.weight`, … (gguf-py `TENSOR_NAMES`, formats.md §3.1)
    case gguf

    /// GGUF names when the store has llama.cpp's embedding name, HF names otherwise.
    public static func detect(_ store: any TensorStore) -> NameConvention {
        store.contains(TensorRole.embedding.name(.gguf)) ? .gguf : .huggingFace
    }
}

/// One tensor of a decoder layer.
public enum LayerTensor: String, Sendable, CaseIterable {
    case attnNorm, q, qBias, k, kBias, v, vBias, o, oBias, qNorm, kNorm, mlpNorm, gate, gateBias, up, upBias, down, downBias

    /// The table: (tensor, HF name after `model.layers.N.`, GGUF name after `blk.N.`).
    static let table: [(LayerTensor, hf: String, gguf: String)] = [
        (.attnNorm, "input_layernorm.weight", "attn_norm.weight"),
        (.q, "self_attn.q_proj.weight", "attn_q.weight"),
        (.qBias, "self_attn.q_proj.bias", "attn_q.bias"),
        (.k, "self_attn.k_proj.weight", "attn_k.weight"),
        (.kBias, "self_attn.k_proj.bias", "attn_k.bias"),
        (.v, "self_attn.v_proj.weight", "attn_v.weight"),
        (.vBias, "self_attn.v_proj.bias", "attn_v.bias"),
        (.o, "self_attn.o_proj.weight", "attn_output.weight"),
        (.oBias, "self_attn.o_proj.bias", "attn_output.bias"),
        (.qNorm, "self_attn.q_norm.weight", "attn_q_norm.weight"),
        (.kNorm, "self_attn.k_norm.weight", "attn_k_norm.weight"),
        (.mlpNorm, "post_attention_layernorm.weight", "ffn_norm.weight"),
        (.gate, "mlp.gate_proj.weight", "ffn_gate.weight"),
        (.gateBias, "mlp.gate_proj.bias", "ffn_gate.bias"),
        (.up, "mlp.up_proj.weight", "ffn_up.weight"),
        (.upBias, "mlp.up_proj.bias", "ffn_up.bias"),
        (.down, "mlp.down_proj.weight", "ffn_down.weight"),
        (.downBias, "mlp.down_proj.bias", "ffn_down.bias"),
    ]

    private static let suffixes: [LayerTensor: (hf: String, gguf: String)] =
        Dictionary(uniqueKeysWithValues: table.map { ($0.0, ($0.hf, $0.gguf)) })
    private static let bySuffix: [NameConvention: [String: LayerTensor]] = [
        .huggingFace: Dictionary(uniqueKeysWithValues: table.map { ($0.hf, $0.0) }),
        .gguf: Dictionary(uniqueKeysWithValues: table.map { ($0.gguf, $0.0) }),
    ]

    /// The name's tail after the layer prefix.
    public func suffix(_ convention: NameConvention) -> String {
        let s = Self.suffixes[self]!  // the table lists every case
        return convention == .gguf ? s.gguf : s.hf
    }

    static func parse(suffix: String, _ convention: NameConvention) -> LayerTensor? { bySuffix[convention]?[suffix] }

    /// Whether a model with `config` has this tensor. The output-projection bias is listed as
    /// absent: llama's `attention_bias` adds it, qwen2's implied q/k/v biases do not, so a reader
    /// takes it when the file has it.
    public func expected(in config: ModelConfig) -> Bool {
        switch self {
        case .qBias, .kBias, .vBias: return config.attentionBias
        case .oBias: return false
        case .qNorm, .kNorm: return config.qkNorm
        case .gateBias, .upBias, .downBias: return config.mlpBias
        default: return true
        }
    }

    /// The shape for `config` (HF order). A q/k-norm weight is `[head_dim]` (shared by the heads,
    /// as Qwen3 stores it); a per-head one is `[heads·head_dim]` and is accepted by readers that
    /// say so.
    public func shape(_ c: ModelConfig) -> [Int] {
        let D = c.hidden, E = c.headDim, H = c.heads, G = c.kvHeads, F = c.intermediate
        switch self {
        case .attnNorm, .mlpNorm, .oBias, .downBias: return [D]
        case .q: return [H * E, D]
        case .k, .v: return [G * E, D]
        case .o: return [D, H * E]
        case .qBias: return [H * E]
        case .kBias, .vBias: return [G * E]
        case .qNorm, .kNorm: return [E]
        case .gate, .up: return [F, D]
        case .gateBias, .upBias: return [F]
        case .down: return [D, F]
        }
    }
}

/// What a tensor is in the model.
public enum TensorRole: Hashable, Sendable {
    case embedding, finalNorm, lmHead
    case layer(Int, LayerTensor)

    static let globals: [(TensorRole, hf: String, gguf: String)] = [
        (.embedding, "model.embed_tokens.weight", "token_embd.weight"),
        (.finalNorm, "model.norm.weight", "output_norm.weight"),
        (.lmHead, "lm_head.weight", "output.weight"),
    ]

    public func name(_ convention: NameConvention) -> String {
        switch self {
        case .layer(let l, let t):
            return (convention == .gguf ? "blk.\(l)." : "model.layers.\(l).") + t.suffix(convention)
        default:
            let g = Self.globals.first { $0.0 == self }!  // the three globals are all listed
            return convention == .gguf ? g.gguf : g.hf
        }
    }

    /// The role of `name` under `convention`, or nil for a tensor outside the table (rope_freqs,
    /// MoE experts, the paper's scale_param, …).
    public static func parse(_ name: String, _ convention: NameConvention) -> TensorRole? {
        if let g = globals.first(where: { (convention == .gguf ? $0.gguf : $0.hf) == name }) { return g.0 }
        let prefix = convention == .gguf ? "blk." : "model.layers."
        guard name.hasPrefix(prefix) else { return nil }
        let rest = name.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: "."), let l = Int(rest[..<dot]), l >= 0,
              let t = LayerTensor.parse(suffix: String(rest[rest.index(after: dot)...]), convention) else { return nil }
        return .layer(l, t)
    }

    /// The shape for `config` (HF order).
    public func shape(_ c: ModelConfig) -> [Int] {
        switch self {
        case .embedding, .lmHead: return [c.vocab, c.hidden]
        case .finalNorm: return [c.hidden]
        case .layer(_, let t): return t.shape(c)
        }
    }

    /// Every tensor a model with `config` has, in a fixed order (embedding, layer by layer,
    /// final norm, head unless tied), optional ones where the config implies them.
    public static func all(_ c: ModelConfig) -> [TensorRole] {
        var roles: [TensorRole] = [.embedding]
        for l in 0..<c.layers {
            roles += LayerTensor.allCases.filter { $0.expected(in: c) }.map { .layer(l, $0) }
        }
        roles.append(.finalNorm)
        if !c.tiedEmbeddings { roles.append(.lmHead) }
        return roles
    }
}
