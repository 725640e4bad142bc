import Checkpoints
import Foundation
import Tokenizers

/// A GGUF model planned as a Hugging Face folder: HF tensor names (the one name table), Q/K
/// rows put back in HF order where llama.cpp's converter permuted them, quantised blocks
/// dequantised to `dtype`, a `config.json` rebuilt from the metadata (position encoding
/// included) and a `tokenizer.json` rebuilt from the GGUF vocabulary.
public struct HuggingFaceExport {
    public let config: ModelConfig
    public let dtype: DType
    public let tensors: [OutputTensor]
    /// config.json, tokenizer.json, tokenizer_config.json.
    public let files: [(name: String, contents: [UInt8])]
    public let notes: [String]

    public static func plan(_ checkpoint: Checkpoint, dtype requested: DType?) throws -> HuggingFaceExport {
        guard let file = checkpoint.store as? GGUFFile else {
            throw ConvertError.unsupportedGGUF(source: checkpoint.path, detail: "not a GGUF file")
        }
        let source = checkpoint.path
        let config = try checkpoint.requireConfig()
        try config.check(against: file)
        let architecture = file.metadata[GGUF.Key.architecture]?.stringValue ?? ""
        let permuted = QKPermutation.applies(toGGUFArchitecture: architecture)
        // Without --dtype: F16 or BF16 when every weight is stored so, else F32 (quantised
        // values, F32 norms and F16 fallbacks all survive F32 exactly).
        let weightTypes = Set(file.tensors.filter { $0.shape.count >= 2 }.map(\.type))
        let dtype = requested ?? (weightTypes.count == 1 ? weightTypes.first?.plainType.flatMap { [.f16, .bf16].contains($0) ? $0 : nil } : nil) ?? .f32
        var notes: [String] = []
        if file.tensors.contains(where: { $0.type.plainType == nil }) {
            notes.append("quantised tensors are dequantised to \(dtype.code): the values are the quantised ones, not the original weights")
        }
        var tensors: [OutputTensor] = []
        for info in file.tensors {
            guard let role = TensorRole.parse(info.name, .gguf) else {
                if info.name == "rope_freqs.weight" {
                    throw ConvertError.unsupportedGGUF(source: source, detail: "rope_freqs.weight holds llama.cpp's per-dimension RoPE factors (Llama 3 scaling), which nopekit cannot turn back into config.json's rope_scaling yet")
                }
                throw ConvertError.unknownTensor(source: source, name: info.name)
            }
            var permutation: TensorTranscoder.Permutation? = nil
            if permuted && QKPermutation.reorders(role) {
                permutation = .init(.toHuggingFace, headDim: config.headDim)
            }
            let target: DType = info.dtype.map { $0.isFloat ? dtype : $0 } ?? dtype
            tensors.append(try TensorTranscoder.output(info, from: file, as: .plain(target), name: role.name(.huggingFace), permutation: permutation))
        }
        let vocabulary = try GGUFVocabulary.fromGGUF(file.metadata, file: source)
        let configJSON = config.huggingFaceJSON(dtype: dtype, padTokenID: vocabulary?.padding)
        var files: [(name: String, contents: [UInt8])] = [("config.json", Array((JSONWriter.pretty(configJSON) + "\n").utf8))]
        if let vocabulary {
            files.append(("tokenizer.json", Array(JSONWriter.compact(try vocabulary.tokenizerJSON()).utf8)))
            files.append(("tokenizer_config.json", Array((JSONWriter.pretty(vocabulary.tokenizerConfigJSON()) + "\n").utf8)))
        } else {
            notes.append("the GGUF has no vocabulary: no tokenizer.json written")
        }
        return HuggingFaceExport(config: config, dtype: dtype, tensors: tensors, files: files, notes: notes)
    }
}

extension ModelConfig {
    /// A transformers `config.json` for this model. All-RoPE models are `llama` (or the qwen
    /// type they came as); a model with NoPE layers is `smollm3`, whose `no_rope_layers` list
    /// (1 = the layer uses RoPE) transformers honours per layer. `nopekit_position` is always
    /// written: nopekit reads it first.
    /// `pad_token_id` is written even when there is none (null): transformers' SmolLM3 default
    /// (128004) lies outside a small vocabulary and would stop the model from loading.
    public func huggingFaceJSON(dtype: DType, padTokenID: Int?) -> JSONValue {
        let hasNoPE = positions.contains(.none)
        let type = hasNoPE ? "smollm3" : (["qwen2", "qwen3", "mistral"].contains(modelType) ? modelType : "llama")
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
        if hasNoPE {
            m.append(JSONMember("no_rope_layers", .array(positions.map { .int($0 == .rope ? 1 : 0) })))
            m.append(JSONMember("use_sliding_window", .bool(false)))
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
