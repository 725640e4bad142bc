extension ModelConfig {
    /// A transformers `config.json` for this model, as `convert` and `pretrain` write it.
    ///
    /// - All-RoPE models are `llama`, or the qwen/mistral type they came as (Qwen 2/3 carry
    ///   per-layer windows in `layer_types`, Mistral one window on every layer).
    /// - A model with NoPE layers or per-layer sliding windows is `smollm3`: transformers
    ///   honours its `no_rope_layers` (1 = the layer uses RoPE) and its `layer_types`
    ///   (`sliding_attention` layers see the last `sliding_window` keys, themselves included)
    ///   per layer, where `llama` would apply RoPE everywhere and ignore windows.
    /// - `nopekit_position` is always written: nopekit reads it first.
    /// - `pad_token_id` is written even when there is none (null): transformers' SmolLM3
    ///   default (128004) lies outside a small vocabulary and would stop the model from loading.
    public func huggingFaceJSON(dtype: DType, padTokenID: Int?) -> JSONValue {
        let windows = (0..<layers).map { window(layer: $0) }
        let windowed = windows.contains { $0 != nil }
        let everyLayerWindowed = !windows.contains { $0 == nil }
        // Qwen 2/3 take `layer_types` themselves; Mistral's one window covers every layer.
        let windowsFit = ["qwen2", "qwen3"].contains(modelType) || (modelType == "mistral" && everyLayerWindowed)
        let hybrid = positions.contains(.none) || (windowed && !windowsFit)
        let type = hybrid ? "smollm3" : (["qwen2", "qwen3", "mistral"].contains(modelType) ? modelType : "llama")
        let classes = ["llama": "LlamaForCausalLM", "smollm3": "SmolLM3ForCausalLM", "qwen2": "Qwen2ForCausalLM",
                       "qwen3": "Qwen3ForCausalLM", "mistral": "MistralForCausalLM"]
        var m: [JSONMember] = [
            JSONMember("architectures", .array([.string(classes[type]!)])),
            JSONMember("model_type", .string(type)),
            JSONMember("hidden_size", .int(hidden)),
            JSONMember("intermediate_size", .int(intermediate)),
            JSONMember("num_hidden_layers", .int(layers)),
            JSONMember("num_attention_heads", .int(heads)),
            JSONMember("num_key_value_heads", .int(kvHeads)),
            JSONMember("head_dim", .int(headDim)),
            JSONMember("vocab_size", .int(vocab)),
            JSONMember("hidden_act", .string("silu")),
            JSONMember("rms_norm_eps", .double(normEps)),
            JSONMember("rope_theta", .double(rope.theta)),
            JSONMember("tie_word_embeddings", .bool(tiedEmbeddings)),
            JSONMember("attention_bias", .bool(attentionBias)),
            JSONMember("mlp_bias", .bool(mlpBias)),
            JSONMember("torch_dtype", .string(dtype.torchName ?? "float32")),
            JSONMember("nopekit_position", .string(PositionSpec.describe(positions))),
        ]
        if let maxPositionEmbeddings { m.append(JSONMember("max_position_embeddings", .int(maxPositionEmbeddings))) }
        m.append(JSONMember("pad_token_id", padTokenID.map { .int($0) } ?? .null))
        if let bosTokenID { m.append(JSONMember("bos_token_id", .int(bosTokenID))) }
        if let eos = eosTokenIDs.first { m.append(JSONMember("eos_token_id", eosTokenIDs.count == 1 ? .int(eos) : .array(eosTokenIDs.map { .int($0) }))) }
        if type == "smollm3" { m.append(JSONMember("no_rope_layers", .array(positions.map { .int($0 == .rope ? 1 : 0) }))) }
        if ["smollm3", "qwen2", "qwen3"].contains(type) { m.append(JSONMember("use_sliding_window", .bool(windowed))) }
        if windowed {
            // One size for every windowed layer: config.json has a single `sliding_window`
            // (ModelConfig decodes no other kind).
            m.append(JSONMember("sliding_window", .int(windows.compactMap { $0 }.max()!)))
            if type != "mistral" {
                m.append(JSONMember("layer_types", .array(windows.map { .string($0 == nil ? "full_attention" : "sliding_attention") })))
            }
        }
        if let t = rope.scalingType, let factor = rope.factor {
            var s: [JSONMember] = [JSONMember("rope_type", .string(t)), JSONMember("factor", .double(factor))]
            if let o = rope.originalMaxPositionEmbeddings { s.append(JSONMember("original_max_position_embeddings", .int(o))) }
            m.append(JSONMember("rope_scaling", .object(s)))
        }
        if rope.partialRotaryFactor != 1 { m.append(JSONMember("partial_rotary_factor", .double(rope.partialRotaryFactor))) }
        return .object(m)
    }
}
