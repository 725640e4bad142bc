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

    /// - Parameter tensors: where to read the tensors from instead of the GGUF file itself (the
    ///   bake's `ScaledStore`); metadata and vocabulary still come from the file.
    public static func plan(_ checkpoint: Checkpoint, dtype requested: DType?, tensors view: (any TensorStore)? = nil) throws -> HuggingFaceExport {
        guard let file = checkpoint.store as? GGUFFile else {
            throw ConvertError.unsupportedGGUF(source: checkpoint.path, detail: "not a GGUF file")
        }
        let store = view ?? file
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
        for info in store.tensors {
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
            tensors.append(try TensorTranscoder.output(info, from: store, as: .plain(target), name: role.name(.huggingFace), permutation: permutation))
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
