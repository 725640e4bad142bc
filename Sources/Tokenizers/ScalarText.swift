import Foundation

/// Text operations on Unicode scalars. Swift's String compares by grapheme cluster, so
/// `" \u{301}".hasPrefix(" ")` is false (the space and the combining accent form one
/// character); tokenizers work on scalars (HF: Rust chars), so every prefix, suffix and
/// replacement in the pipeline goes through these.
extension String {
    func scalarsHavePrefix(_ prefix: String) -> Bool { unicodeScalars.starts(with: prefix.unicodeScalars) }

    func scalarsHaveSuffix(_ suffix: String) -> Bool { unicodeScalars.reversed().starts(with: suffix.unicodeScalars.reversed()) }

    /// Every occurrence of `target` replaced, comparing scalars (never canonical equivalence).
    func replacingScalars(_ target: String, with replacement: String) -> String {
        let needle = Array(target.unicodeScalars)
        guard let first = needle.first else { return self }
        let scalars = unicodeScalars
        guard scalars.contains(first) else { return self }
        var out = String.UnicodeScalarView()
        var i = scalars.startIndex
        while i < scalars.endIndex {
            if scalars[i] == first, scalars[i...].starts(with: needle) {
                out.append(contentsOf: replacement.unicodeScalars)
                i = scalars.index(i, offsetBy: needle.count)
            } else {
                out.append(scalars[i])
                i = scalars.index(after: i)
            }
        }
        return String(out)
    }

    func droppingScalars(first n: Int = 0, last m: Int = 0) -> String {
        let s = unicodeScalars
        let start = s.index(s.startIndex, offsetBy: n, limitedBy: s.endIndex) ?? s.endIndex
        let end = s.index(s.endIndex, offsetBy: -m, limitedBy: start) ?? start
        return String(s[start..<end])
    }
}

/// A dictionary key that compares strings byte for byte. Swift's `String ==` (and so its
/// Dictionary) treats canonically equivalent strings as equal: "é" (U+00E9) and "e\u{301}"
/// would be one key, while a vocabulary holds them as different tokens, as HF's Rust maps
/// and llama.cpp's std::string maps do.
struct ExactKey: Hashable {
    let text: String
    init(_ text: String) { self.text = text }

    static func == (a: ExactKey, b: ExactKey) -> Bool {
        var x = a.text, y = b.text
        return x.withUTF8 { xb in y.withUTF8 { yb in xb.count == yb.count && (xb.count == 0 || memcmp(xb.baseAddress!, yb.baseAddress!, xb.count) == 0) } }
    }

    func hash(into hasher: inout Hasher) {
        var copy = text
        copy.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}
