/// Tokens matched in the raw text before anything else runs (HF `AddedVocabulary`): special
/// tokens like `<s>` or `<|eot_id|>` and user-added ones. Matching is leftmost, longest first;
/// `lstrip`/`rstrip` tokens swallow the whitespace beside them; `singleWord` tokens match only
/// between word boundaries.
struct AddedTokens {
    struct Token {
        let id: Int
        let content: String
        let special: Bool
        let lstrip: Bool
        let rstrip: Bool
        let singleWord: Bool
    }

    enum Segment: Equatable {
        case text(Range<String.Index>)
        case token(Int)
    }

    let tokens: [Token]
    let specialIDs: Set<Int>
    /// Tokens by first scalar, longest first. Matching works on Unicode scalars, as HF's
    /// matcher works on the string's bytes, so a token followed by a combining mark still matches.
    private let byFirst: [Unicode.Scalar: [Token]]

    init(_ tokens: [Token]) {
        self.tokens = tokens
        specialIDs = Set(tokens.filter(\.special).map(\.id))
        var map: [Unicode.Scalar: [Token]] = [:]
        for t in tokens where !t.content.isEmpty { map[t.content.unicodeScalars.first!, default: []].append(t) }
        byFirst = map.mapValues { $0.sorted { $0.content.unicodeScalars.count > $1.content.unicodeScalars.count } }
    }

    func isSpecial(_ id: Int) -> Bool { specialIDs.contains(id) }

    /// `text` cut into plain runs and matched tokens (special ones only if `includingSpecial`).
    func split(_ text: String, includingSpecial: Bool = true) -> [Segment] {
        guard !byFirst.isEmpty else { return text.isEmpty ? [] : [.text(text.startIndex..<text.endIndex)] }
        let scalars = text.unicodeScalars
        var out: [Segment] = []
        var runStart = scalars.startIndex
        var i = scalars.startIndex
        while i < scalars.endIndex {
            if let candidates = byFirst[scalars[i]],
               let t = candidates.first(where: { (includingSpecial || !$0.special) && matches($0, scalars, at: i) }) {
                var start = i
                var end = scalars.index(i, offsetBy: t.content.unicodeScalars.count)
                if t.lstrip { while start > runStart, scalars[scalars.index(before: start)].properties.isWhitespace { start = scalars.index(before: start) } }
                if t.rstrip { while end < scalars.endIndex, scalars[end].properties.isWhitespace { end = scalars.index(after: end) } }
                if runStart < start { out.append(.text(runStart..<start)) }
                out.append(.token(t.id))
                i = end
                runStart = end
            } else {
                i = scalars.index(after: i)
            }
        }
        if runStart < scalars.endIndex { out.append(.text(runStart..<scalars.endIndex)) }
        return out
    }

    private func matches(_ t: Token, _ scalars: String.UnicodeScalarView, at i: String.Index) -> Bool {
        guard scalars[i...].starts(with: t.content.unicodeScalars) else { return false }
        if t.singleWord {
            let end = scalars.index(i, offsetBy: t.content.unicodeScalars.count)
            let beforeOK = i == scalars.startIndex || !isWordChar(scalars[scalars.index(before: i)])
            let afterOK = end == scalars.endIndex || !isWordChar(scalars[end])
            return beforeOK && afterOK
        }
        return true
    }

    private func isWordChar(_ c: Unicode.Scalar) -> Bool { c.properties.isAlphabetic || c.properties.numericType != nil || c == "_" }
}
