import Checkpoints
import Foundation

/// Splitting normalised text into words before BPE (HF `pre_tokenizers`): Split with a regex,
/// ByteLevel (with GPT-2's built-in regex when `use_regex`), Metaspace, Digits, and Sequence.
enum PreTokenizer {
    case sequence([PreTokenizer])
    case split(SplitPattern, behavior: SplitBehavior, invert: Bool)
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case metaspace(replacement: String, prependScheme: PrependScheme, split: Bool)
    case digits(individual: Bool)

    enum SplitBehavior: String { case isolated = "Isolated", removed = "Removed", mergedWithPrevious = "MergedWithPrevious", mergedWithNext = "MergedWithNext", contiguous = "Contiguous" }
    enum PrependScheme: String { case always, first, never }

    /// GPT-2's pre-tokenization regex (HF `ByteLevel` with `use_regex`).
    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    static func from(_ json: JSONValue?, file: String) throws -> PreTokenizer? {
        guard let json, !json.isNull else { return nil }
        let type = json["type"]?.stringValue ?? ""
        switch type {
        case "Sequence":
            return .sequence(try (json["pretokenizers"]?.arrayValue ?? []).compactMap { try from($0, file: file) })
        case "Split":
            let pattern: SplitPattern
            if let regex = json["pattern"]?["Regex"]?.stringValue { pattern = try SplitPattern(regex: regex, file: file) }
            else if let s = json["pattern"]?["String"]?.stringValue { pattern = .literal(s) }
            else { throw TokenizerError.invalid(file: file, detail: "Split pre-tokenizer without a pattern") }
            guard let behavior = SplitBehavior(rawValue: json["behavior"]?.stringValue ?? "") else {
                throw TokenizerError.unsupported(file: file, component: "Split behavior \(json["behavior"]?.stringValue ?? "?")", detail: "not implemented")
            }
            return .split(pattern, behavior: behavior, invert: json["invert"]?.boolValue ?? false)
        case "ByteLevel":
            return .byteLevel(addPrefixSpace: json["add_prefix_space"]?.boolValue ?? true, useRegex: json["use_regex"]?.boolValue ?? true)
        case "Metaspace":
            let scheme: PrependScheme
            if let s = json["prepend_scheme"]?.stringValue, let p = PrependScheme(rawValue: s) { scheme = p }
            else { scheme = (json["add_prefix_space"]?.boolValue ?? true) ? .always : .never }
            return .metaspace(replacement: json["replacement"]?.stringValue ?? "▁", prependScheme: scheme, split: json["split"]?.boolValue ?? true)
        case "Digits":
            return .digits(individual: json["individual_digits"]?.boolValue ?? false)
        default:
            throw TokenizerError.unsupported(file: file, component: "pre-tokenizer \(type)", detail: "not implemented")
        }
    }

    /// Splits every piece of `pieces`. `isFirst` says whether the text is the start of the input
    /// (Metaspace's `first` prepend scheme prepends only there).
    func apply(_ pieces: [String], isFirst: Bool) -> [String] {
        switch self {
        case .sequence(let list):
            return list.reduce(pieces) { $1.apply($0, isFirst: isFirst) }
        case .split(let pattern, let behavior, let invert):
            return pieces.flatMap { pattern.split($0, behavior: behavior, invert: invert) }
        case .byteLevel(let addPrefixSpace, let useRegex):
            return pieces.flatMap { piece -> [String] in
                let text = addPrefixSpace && !piece.scalarsHavePrefix(" ") ? " " + piece : piece
                let words = useRegex ? SplitPattern.gpt2.split(text, behavior: .isolated, invert: false) : [text]
                return words.map { ByteLevel.encode($0) }
            }
        case .metaspace(let replacement, let scheme, let split):
            return pieces.enumerated().flatMap { i, piece -> [String] in
                var text = piece.replacingScalars(" ", with: replacement)
                let prepend = scheme == .always || (scheme == .first && isFirst && i == 0)
                if prepend && !text.scalarsHavePrefix(replacement) { text = replacement + text }
                guard split else { return [text] }
                // Split before every replacement character, keeping it with the word that follows.
                var out: [String] = []
                var current = String.UnicodeScalarView()
                let mark = replacement.unicodeScalars.first
                for c in text.unicodeScalars {
                    if c == mark && !current.isEmpty { out.append(String(current)); current = String.UnicodeScalarView() }
                    current.append(c)
                }
                if !current.isEmpty { out.append(String(current)) }
                return out
            }
        case .digits(let individual):
            let pattern: SplitPattern = individual ? .digitEach : .digitRuns
            return pieces.flatMap { pattern.split($0, behavior: .isolated, invert: false) }
        }
    }
}

/// A Split pattern: a literal or an ICU regex rewritten to Oniguruma's meaning of `\s`.
enum SplitPattern {
    case literal(String)
    case regex(NSRegularExpression)

    static let gpt2 = try! SplitPattern(regex: PreTokenizer.gpt2Pattern, file: "built-in GPT-2 pattern")
    static let digitRuns = try! SplitPattern(regex: #"\p{Nd}+"#, file: "built-in")
    static let digitEach = try! SplitPattern(regex: #"\p{Nd}"#, file: "built-in")

    /// HF compiles these patterns with Oniguruma, whose `\s` is Unicode White_Space (it includes
    /// U+000B and U+0085, which ICU's `\s` does not), so `\s`/`\S` become the property.
    init(regex: String, file: String) throws {
        if let group = Self.nestedQuantifier(in: regex) {
            throw TokenizerError.unsupported(file: file, component: "regex \(regex)",
                                             detail: "the group \(group) repeats something that itself repeats, which can take exponential time on a short text (catastrophic backtracking); no real tokenizer needs that")
        }
        let rewritten = regex.replacingOccurrences(of: #"\s"#, with: #"\p{White_Space}"#)
            .replacingOccurrences(of: #"\S"#, with: #"\P{White_Space}"#)
        do { self = .regex(try NSRegularExpression(pattern: rewritten)) } catch {
            throw TokenizerError.unsupported(file: file, component: "regex \(regex)", detail: "ICU cannot compile it")
        }
    }

    /// The first group that contains a repetition and is itself repeated (`(a+)+`, `(a*)*`,
    /// `(?:x+y?){2,}`), the shape behind catastrophic backtracking: a backtracking engine tries
    /// every way of splitting the text between the two repetitions. ICU has no time limit
    /// through Foundation, so such patterns are refused when the tokenizer loads.
    static func nestedQuantifier(in regex: String) -> String? {
        let chars = Array(regex)
        var stack: [(start: Int, repeats: Bool)] = []
        var inClass = false
        var i = 0
        func isQuantifier(at j: Int) -> Bool {
            guard j < chars.count else { return false }
            return chars[j] == "+" || chars[j] == "*" || (chars[j] == "{" && chars[j...].prefix(while: { $0 != "}" }).contains(","))
        }
        while i < chars.count {
            let c = chars[i]
            if c == "\\" { i += 2; continue }
            if inClass { if c == "]" { inClass = false }; i += 1; continue }
            switch c {
            case "[": inClass = true
            case "(": stack.append((i, false))
            case ")":
                guard let group = stack.popLast() else { break }
                if group.repeats && isQuantifier(at: i + 1) { return String(chars[group.start...i]) + String(chars[i + 1]) }
                if group.repeats || isQuantifier(at: i + 1) { if !stack.isEmpty { stack[stack.count - 1].repeats = true } }
            default:
                if isQuantifier(at: i), !stack.isEmpty { stack[stack.count - 1].repeats = true }
            }
            i += 1
        }
        return nil
    }

    /// Ranges (in `text`, scalar-aligned) of the non-empty matches.
    func matches(_ text: String) -> [Range<String.Index>] {
        switch self {
        case .literal(let s):
            guard !s.isEmpty else { return [] }
            var out: [Range<String.Index>] = []
            var start = text.startIndex
            while let r = text.range(of: s, options: .literal, range: start..<text.endIndex) { out.append(r); start = r.upperBound }
            return out
        case .regex(let re):
            // Matches come in order: walk the UTF-16 view forward from the previous position
            // instead of converting every offset from the start.
            let utf16 = text.utf16
            var index = utf16.startIndex, offset = 0
            func advance(to target: Int) -> String.Index {
                index = utf16.index(index, offsetBy: target - offset)
                offset = target
                return index
            }
            var out: [Range<String.Index>] = []
            re.enumerateMatches(in: text, range: NSRange(location: 0, length: utf16.count)) { m, _, _ in
                guard let m, m.range.length > 0 else { return }
                let lo = advance(to: m.range.location)
                out.append(lo..<advance(to: m.range.location + m.range.length))
            }
            return out
        }
    }

    /// HF `split` with a behaviour: the text cut into matched and unmatched runs, matches kept
    /// alone (Isolated), dropped (Removed) or glued to a neighbour.
    func split(_ text: String, behavior: PreTokenizer.SplitBehavior, invert: Bool) -> [String] {
        // Slices are taken on the scalar view: a regex may cut inside a grapheme (a letter and
        // its combining mark), which String's character view would round away.
        let scalars = text.unicodeScalars
        func slice(_ r: Range<String.Index>) -> String { String(scalars[r]) }
        var runs: [(Range<String.Index>, Bool)] = []  // (run, is a match)
        var cursor = text.startIndex
        for r in matches(text) {
            if cursor < r.lowerBound { runs.append((cursor..<r.lowerBound, false)) }
            runs.append((r, true))
            cursor = r.upperBound
        }
        if cursor < text.endIndex { runs.append((cursor..<text.endIndex, false)) }
        if invert { runs = runs.map { ($0.0, !$0.1) } }
        var merged: [Range<String.Index>] = []
        switch behavior {
        case .isolated: merged = runs.map(\.0)
        case .removed: merged = runs.filter { !$0.1 }.map(\.0)
        case .mergedWithPrevious:
            for (run, isMatch) in runs {
                if isMatch, let last = merged.last { merged[merged.count - 1] = last.lowerBound..<run.upperBound } else { merged.append(run) }
            }
        case .mergedWithNext:
            var pending: Range<String.Index>? = nil
            for (run, isMatch) in runs {
                if isMatch { pending = pending.map { $0.lowerBound..<run.upperBound } ?? run; continue }
                if let p = pending { merged.append(p.lowerBound..<run.upperBound); pending = nil } else { merged.append(run) }
            }
            if let p = pending { merged.append(p) }
        case .contiguous:
            var out: [(Range<String.Index>, Bool)] = []
            for (run, isMatch) in runs {
                if let last = out.last, last.1, isMatch { out[out.count - 1] = (last.0.lowerBound..<run.upperBound, true) } else { out.append((run, isMatch)) }
            }
            merged = out.map(\.0)
        }
        return merged.map(slice)
    }
}
