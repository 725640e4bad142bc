import Checkpoints
import Foundation

/// Text normalisation before pre-tokenization (HF `normalizers`). Only the kinds used by the
/// BPE tokenizers nopekit targets are built; any other is refused by name.
enum Normalizer {
    case sequence([Normalizer])
    case prepend(String)
    case replace(pattern: String, content: String)
    case nfc, nfd, nfkc, nfkd
    case lowercase

    static func from(_ json: JSONValue?, file: String) throws -> Normalizer? {
        guard let json, !json.isNull else { return nil }
        let type = json["type"]?.stringValue ?? ""
        switch type {
        case "Sequence":
            return .sequence(try (json["normalizers"]?.arrayValue ?? []).compactMap { try from($0, file: file) })
        case "Prepend": return .prepend(json["prepend"]?.stringValue ?? "")
        case "Replace":
            guard let pattern = json["pattern"]?["String"]?.stringValue else {
                throw TokenizerError.unsupported(file: file, component: "normalizer Replace with a regex pattern", detail: "only string patterns are implemented")
            }
            return .replace(pattern: pattern, content: json["content"]?.stringValue ?? "")
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "NFKC": return .nfkc
        case "NFKD": return .nfkd
        case "Lowercase": return .lowercase
        default: throw TokenizerError.unsupported(file: file, component: "normalizer \(type)", detail: "not implemented")
        }
    }

    func apply(_ text: String) -> String {
        switch self {
        case .sequence(let list): return list.reduce(text) { $1.apply($0) }
        case .prepend(let p): return text.isEmpty ? text : p + text
        case .replace(let pattern, let content): return pattern.isEmpty ? text : text.replacingScalars(pattern, with: content)
        case .nfc: return text.precomposedStringWithCanonicalMapping
        case .nfd: return text.decomposedStringWithCanonicalMapping
        case .nfkc: return text.precomposedStringWithCompatibilityMapping
        case .nfkd: return text.decomposedStringWithCompatibilityMapping
        case .lowercase: return text.lowercased()
        }
    }
}
