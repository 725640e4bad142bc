/// Why a tokenizer could not be loaded or used. Each names the file and the component.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, detail: String)
    /// A tokenizer kind or pipeline component nopekit does not implement: named, not guessed.
    case unsupported(file: String, component: String, detail: String)
    case invalid(file: String, detail: String)
    case notFound(path: String)
    /// A text or token data file that cannot be used (not the tokenizer's fault).
    case badData(file: String, detail: String)

    public var description: String {
        switch self {
        case .unreadable(let f, let d): return "\(f): cannot read tokenizer: \(d)"
        case .unsupported(let f, let c, let d):
            return "\(f): \(c) is not supported by nopekit (\(d)); supported: BPE models (SentencePiece-style with byte fallback, and byte-level)"
        case .invalid(let f, let d): return "\(f): invalid tokenizer: \(d)"
        case .notFound(let p): return "\(p): no tokenizer.json here (or a .gguf with a vocabulary)"
        case .badData(let f, let d): return "\(f): \(d)"
        }
    }
}
