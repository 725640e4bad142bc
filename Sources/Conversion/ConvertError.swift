import Checkpoints

/// Why a checkpoint cannot be converted. Each case names the source and says what to do
/// instead; the output is never written when one is thrown.
public enum ConvertError: Error, CustomStringConvertible, Equatable {
    /// The per-layer NoPE/RoPE pattern has no GGUF encoding that stock llama.cpp honours.
    case positionPattern(source: String, pattern: String)
    /// A model feature llama.cpp's architectures (or nopekit's GGUF reader) cannot express.
    case unsupportedModel(source: String, feature: String, advice: String)
    /// A tensor outside the name table.
    case unknownTensor(source: String, name: String)
    /// A GGUF that is not a Llama-family model nopekit can rename.
    case unsupportedGGUF(source: String, detail: String)

    public var description: String {
        switch self {
        case .positionPattern(let s, let p):
            return "\(s): position pattern \"\(p)\" cannot be written as GGUF: stock llama.cpp runs NoPE layers only as "
                + "all-NoPE (architecture granite), RoPE except every 4th layer (smollm3) or all-RoPE (llama); "
                + "any other pattern would run RoPE where the model has none. Keep this model in safetensors."
        case .unsupportedModel(let s, let f, let a):
            return "\(s): \(f) cannot be converted to GGUF: \(a)"
        case .unknownTensor(let s, let n):
            return "\(s): tensor '\(n)' is not part of a Llama-family block (the name table has no entry for it); "
                + "remove it or bake it into the weights first"
        case .unsupportedGGUF(let s, let d):
            return "\(s): cannot convert this GGUF to a Hugging Face folder: \(d)"
        }
    }
}
