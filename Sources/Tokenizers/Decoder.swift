import Checkpoints
import Foundation

/// Turning token pieces back into text (HF `decoders`): the chain is applied to the list of
/// pieces, then the pieces are concatenated.
enum Decoder {
    case sequence([Decoder])
    case replace(pattern: String, content: String)
    case byteFallback
    case fuse
    case strip(content: String, start: Int, stop: Int)
    case byteLevel
    case metaspace(replacement: String, prependScheme: PreTokenizer.PrependScheme)

    static func from(_ json: JSONValue?, file: String) throws -> Decoder? {
        guard let json, !json.isNull else { return nil }
        let type = json["type"]?.stringValue ?? ""
        switch type {
        case "Sequence": return .sequence(try (json["decoders"]?.arrayValue ?? []).compactMap { try from($0, file: file) })
        case "Replace":
            guard let pattern = json["pattern"]?["String"]?.stringValue else {
                throw TokenizerError.unsupported(file: file, component: "decoder Replace with a regex", detail: "only string patterns are implemented")
            }
            return .replace(pattern: pattern, content: json["content"]?.stringValue ?? "")
        case "ByteFallback": return .byteFallback
        case "Fuse": return .fuse
        case "Strip":
            return .strip(content: json["content"]?.stringValue ?? " ", start: json["start"]?.intValue ?? 0, stop: json["stop"]?.intValue ?? 0)
        case "ByteLevel": return .byteLevel
        case "Metaspace":
            let scheme = json["prepend_scheme"]?.stringValue.flatMap(PreTokenizer.PrependScheme.init(rawValue:))
                ?? ((json["add_prefix_space"]?.boolValue ?? true) ? .always : .never)
            return .metaspace(replacement: json["replacement"]?.stringValue ?? "▁", prependScheme: scheme)
        default: throw TokenizerError.unsupported(file: file, component: "decoder \(type)", detail: "not implemented")
        }
    }

    /// The byte of a byte-fallback piece `<0xNN>`, or nil.
    static func byteValue(_ piece: String) -> UInt8? {
        guard piece.utf8.count == 6, piece.hasPrefix("<0x"), piece.hasSuffix(">") else { return nil }
        return UInt8(piece.dropFirst(3).prefix(2), radix: 16)
    }

    func apply(_ pieces: [String]) -> [String] {
        switch self {
        case .sequence(let list):
            return list.reduce(pieces) { $1.apply($0) }
        case .replace(let pattern, let content):
            return pieces.map { $0.replacingScalars(pattern, with: content) }
        case .byteFallback:
            // Runs of <0xNN> pieces become their UTF-8 text; invalid sequences become U+FFFD
            // once per byte, as HF does.
            var out: [String] = []
            var bytes: [UInt8] = []
            func flush() {
                guard !bytes.isEmpty else { return }
                if let s = String(validating: bytes, as: UTF8.self) { out.append(s) }
                else { out.append(contentsOf: Array(repeating: "\u{FFFD}", count: bytes.count)) }
                bytes.removeAll()
            }
            for p in pieces {
                if let b = Decoder.byteValue(p) {
                    bytes.append(b)
                } else {
                    flush()
                    out.append(p)
                }
            }
            flush()
            return out
        case .fuse:
            return [pieces.joined()]
        case .strip(let content, let start, let stop):
            let width = content.unicodeScalars.count
            return pieces.map { piece in
                var s = piece
                for _ in 0..<start where s.scalarsHavePrefix(content) { s = s.droppingScalars(first: width) }
                for _ in 0..<stop where s.scalarsHaveSuffix(content) { s = s.droppingScalars(last: width) }
                return s
            }
        case .byteLevel:
            // Concatenate first: a character's bytes may span pieces.
            let bytes = ByteLevel.decode(pieces.joined())
            return [String(decoding: bytes, as: UTF8.self)]
        case .metaspace(let replacement, let scheme):
            // As HF: every replacement becomes a space, except in the first piece, where it is
            // dropped (unless the scheme is never).
            return pieces.enumerated().map { i, piece in
                piece.replacingScalars(replacement, with: i == 0 && scheme != .never ? "" : " ")
            }
        }
    }
}
