/// Why a verification could not run, each naming what to change.
public enum VerificationError: Error, CustomStringConvertible, Equatable {
    case notEnoughData(needed: Int, have: Int)
    case lengthTooShortForPrompt(length: Int, needed: Int)
    case badTemplate(file: String, reason: String)
    case notEquivalent(String)
    case unsupported(String)

    public var description: String {
        switch self {
        case .notEnoughData(let needed, let have):
            return "the evaluation data has \(have) tokens, fewer than the \(needed) one window needs; give a longer --data file or shorter --lengths"
        case .lengthTooShortForPrompt(let length, let needed):
            return "a passkey prompt needs at least \(needed) tokens without filler; \(length) is too short (drop it from --lengths)"
        case .badTemplate(let file, let reason):
            return "\(file): \(reason) (a passkey template is a JSON object with string fields task, needle, question, answer_prefix and a non-empty list filler; the needle holds {key})"
        case .notEquivalent(let detail):
            return "the patched model does not compute the baseline with the temperatures at run time: \(detail)"
        case .unsupported(let detail):
            return detail
        }
    }
}
