import Checkpoints
import Engine
import Foundation
import Verification

/// Writes a trained model as a Hugging Face folder: config.json (with `nopekit_position`, the
/// field nopekit's reader trusts for NoPE layers), model.safetensors, tokenizer.json and
/// tokenizer_config.json, and the corpus's passkey wording as passkey_prompt.json (what
/// `nopekit verify` asks the model). Each file replaces its previous version atomically.
public enum ModelFolder {
    public static func configJSON(_ c: ModelConfig) -> String {
        let json = JSONValue.object([
            JSONMember("architectures", .array([.string("LlamaForCausalLM")])),
            JSONMember("model_type", .string("llama")),
            JSONMember("vocab_size", .int(c.vocab)),
            JSONMember("hidden_size", .int(c.hidden)),
            JSONMember("intermediate_size", .int(c.intermediate)),
            JSONMember("num_hidden_layers", .int(c.layers)),
            JSONMember("num_attention_heads", .int(c.heads)),
            JSONMember("num_key_value_heads", .int(c.kvHeads)),
            JSONMember("head_dim", .int(c.headDim)),
            JSONMember("hidden_act", .string("silu")),
            JSONMember("max_position_embeddings", .int(c.maxPositionEmbeddings ?? 256)),
            JSONMember("rms_norm_eps", .double(c.normEps)),
            JSONMember("rope_theta", .double(c.rope.theta)),
            JSONMember("tie_word_embeddings", .bool(c.tiedEmbeddings)),
            JSONMember("attention_bias", .bool(false)),
            JSONMember("mlp_bias", .bool(false)),
            JSONMember("bos_token_id", .int(c.bosTokenID ?? 256)),
            JSONMember("eos_token_id", .int(c.eosTokenIDs.first ?? 257)),
            JSONMember("torch_dtype", .string("float32")),
            JSONMember("nopekit_position", .string(PositionSpec.describe(c.positions))),
        ])
        return JSONWriter.pretty(json, sortKeys: true) + "\n"
    }

    /// Saves weights and companion files into `folder` (created if needed).
    public static func save(_ p: Parameters, to folder: String, metadata: [String: String] = [:]) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let store = ParameterStore(p)
        let outputs = p.tensorList.map { t in OutputTensor.copy(store.lookup(t.name)!, from: store) }
        try replace(folder + "/model.safetensors") { try SafetensorsWriter.write(outputs, metadata: metadata.merging(["format": "pt"]) { a, _ in a }, to: $0) }
        try replaceText(folder + "/config.json", configJSON(p.config))
        try replaceText(folder + "/tokenizer.json", ByteVocabulary.tokenizerJSON)
        try replaceText(folder + "/tokenizer_config.json", ByteVocabulary.tokenizerConfigJSON)
        try replaceText(folder + "/" + PasskeyTemplate.fileName, JSONWriter.pretty(Corpus.passkeyTemplate.json, sortKeys: false) + "\n")
    }

    /// Writes `path` through `write` under a temporary name, then renames it over the old file
    /// (`AtomicOutput`: the one atomic path, synced before the rename; nothing left on error).
    public static func replace(_ path: String, _ write: (String) throws -> Void) throws {
        let output = try AtomicOutput(finalPath: path, kind: .file, replacing: true)
        try write(output.temporaryPath)
        try output.commit()
    }

    public static func replaceText(_ path: String, _ text: String) throws {
        try AtomicOutput.write(Array(text.utf8), to: path, replacing: true)
    }
}
