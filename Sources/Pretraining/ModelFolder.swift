import Checkpoints
import Engine
import Foundation
import Verification

/// Writes a trained model as a Hugging Face folder: config.json (with `nopekit_position`, the
/// field nopekit's reader trusts for NoPE layers), model.safetensors, tokenizer.json and
/// tokenizer_config.json, and the corpus's passkey wording as passkey_prompt.json (what
/// `nopekit verify` asks the model). Each file replaces its previous version atomically.
public enum ModelFolder {
    /// config.json as `convert` writes it (`ModelConfig.huggingFaceJSON`): `llama` for an
    /// all-RoPE model, `smollm3` with `no_rope_layers` and `layer_types` for NoPE layers or
    /// sliding windows, so transformers runs the organism as nopekit trained it.
    public static func configJSON(_ c: ModelConfig) -> String {
        JSONWriter.pretty(c.huggingFaceJSON(dtype: .f32, padTokenID: nil)) + "\n"
    }

    /// Saves weights and companion files into `folder` (created if needed); `passkeyTemplate`
    /// is the wording the model was trained on.
    public static func save(_ p: Parameters, to folder: String, metadata: [String: String] = [:],
                            passkeyTemplate: PasskeyTemplate = Corpus.passkeyTemplate) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        // The record goes first and comes back last: a save killed in between leaves none, not
        // one that no longer matches the files.
        try? FileManager.default.removeItem(atPath: folder + "/" + ChecksumManifest.folderFileName)
        let store = ParameterStore(p)
        let outputs = p.tensorList.map { t in OutputTensor.copy(store.lookup(t.name)!, from: store) }
        try replace(folder + "/model.safetensors") {
            try SafetensorsWriter.write(outputs, metadata: metadata.merging(["format": "pt"]) { a, _ in a }, to: $0, checksumFile: false)
        }
        try replaceText(folder + "/config.json", configJSON(p.config))
        try replaceText(folder + "/tokenizer.json", ByteVocabulary.tokenizerJSON)
        try replaceText(folder + "/tokenizer_config.json", ByteVocabulary.tokenizerConfigJSON)
        try replaceText(folder + "/" + PasskeyTemplate.fileName, JSONWriter.pretty(passkeyTemplate.json, sortKeys: false) + "\n")
        try writeChecksums(folder)
    }

    /// The model files `save` writes, which its checksum record lists.
    static let files = ["model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", PasskeyTemplate.fileName]

    /// `folder/SHA256SUMS` for the model files (`ChecksumManifest`); the training log and card,
    /// rewritten beside them after every save, are left out.
    static func writeChecksums(_ folder: String) throws {
        try replaceText(folder + "/" + ChecksumManifest.folderFileName, try ChecksumManifest.of(files, in: folder).text)
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
