import Foundation
import Verification

/// A deterministic synthetic corpus for training model organisms: English-like prose from a
/// small stochastic grammar (names, places, numbers, clauses: real local structure), mixed with
/// retrieval documents in the style of the passkey test, whose key can sit at any depth.
public struct Corpus {
    /// A seeded generator (PCG-style LCG + xorshift output), stable across platforms.
    public struct Random {
        var state: UInt64
        public init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 0x1234_5678_9ABC_DEF1 }
        public mutating func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            var x = state
            x ^= x >> 33; x = x &* 0xFF51_AFD7_ED55_8CCD; x ^= x >> 33
            return x
        }
        public mutating func int(_ n: Int) -> Int { Int(next() % UInt64(max(1, n))) }
        public mutating func pick<T>(_ a: [T]) -> T { a[int(a.count)] }
        public mutating func chance(_ p: Double) -> Bool { Double(next() % 1_000_000) / 1_000_000 < p }
    }

    static let names = ["Alice", "Bruno", "Chen", "Dara", "Elif", "Farid", "Greta", "Hana", "Ivan", "Jonas", "Kofi", "Lena", "Mira", "Nils", "Omar", "Priya", "Rosa", "Sami", "Tomas", "Uma"]
    static let places = ["the harbor", "the old mill", "the market", "the library", "the valley", "the station", "the garden", "the bridge", "the school", "the bakery", "the museum", "the forest"]
    static let objects = ["a red box", "three letters", "the blue lamp", "a small key", "two baskets", "the map", "an old coin", "seven apples", "the notebook", "a wooden chair"]
    static let verbs = ["found", "carried", "painted", "sold", "hid", "counted", "repaired", "borrowed", "described", "opened"]
    static let times = ["in the morning", "at noon", "after dinner", "on Monday", "last winter", "before sunrise", "at night", "in spring"]
    static let adjectives = ["quiet", "busy", "cold", "bright", "narrow", "famous", "empty", "green"]
    static let connectives = ["because", "while", "although", "so", "and then", "but"]

    /// One sentence of the grammar.
    public static func sentence(_ r: inout Random) -> String {
        let subject = r.pick(names)
        switch r.int(6) {
        case 0: return "\(subject) \(r.pick(verbs)) \(r.pick(objects)) at \(r.pick(places)) \(r.pick(times))."
        case 1: return "\(r.pick(places).prefix(1).uppercased() + r.pick(places).dropFirst()) was \(r.pick(adjectives)) \(r.pick(times))."
        case 2: return "\(subject) walked \(r.int(40) + 2) steps to \(r.pick(places)), \(r.pick(connectives)) \(r.pick(names)) \(r.pick(verbs)) \(r.pick(objects))."
        case 3: return "There were \(r.int(900) + 10) people at \(r.pick(places)) \(r.pick(times))."
        case 4: return "\(subject) said that \(r.pick(names)) \(r.pick(verbs)) \(r.pick(objects))."
        default: return "The \(r.pick(adjectives)) road from \(r.pick(places)) to \(r.pick(places)) is \(r.int(90) + 1) miles long."
        }
    }

    /// The filler of llama.cpp's passkey test.
    public static let filler = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."

    /// The corpus's passkey wording as a verification template: the task, needle and question
    /// of `passkeyDocument`, and a filler pool of the llama.cpp filler and sentences of the
    /// grammar (fixed seed). `nopekit pretrain` writes it beside the model as
    /// `passkey_prompt.json`, so `verify` tests the organism in the words it learned.
    public static let passkeyTemplate: PasskeyTemplate = {
        var r = Random(seed: 2024)
        var pool = [filler + " "]
        while pool.count < 16 {
            let s = sentence(&r) + " "
            if !pool.contains(s) { pool.append(s) }
        }
        return PasskeyTemplate(
            task: "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz you about the important information there. ",
            filler: pool, needle: "The pass key is {key}. Remember it. {key} is the pass key. ",
            question: "What is the pass key? The pass key is", answerPrefix: " ")
    }()

    /// The same wording with a one-line task, for `Style.passkeyFirst`: the long task line
    /// (147 bytes) with needle and question already fills 250 bytes, which leaves no room for
    /// filler between needle and question in a 256-byte training sequence. With this one the
    /// fixed parts (task, needle, question, answer) take 135 bytes, and up to 120 bytes of
    /// filler fit after BOS.
    public static let shortPasskeyTemplate: PasskeyTemplate = {
        var t = passkeyTemplate
        t.task = "Find the pass key in this text. "
        return t
    }()

    /// How training sequences are drawn, and in which wording passkey documents are written.
    public enum Style: String, CaseIterable, Sendable {
        /// Documents packed end to end, half of them passkey documents of 64…L bytes in the
        /// long wording (`passkeyTemplate`), half prose. The bundled NoPE organism. At L = 256
        /// every passkey document is filler-free: the needle sits right before the question.
        case mixed
        /// Every training sequence opens (after BOS) with one passkey document in the short
        /// wording, filling as much of the sequence as it is drawn to (key at any depth), then
        /// packed text of the same wording. Every sequence asks for retrieval, from up to
        /// L − 140 bytes away; the recipe of issue 15's PyTorch trials.
        case passkeyFirst = "passkey-first"

        /// The wording of this style's passkey documents (written as passkey_prompt.json).
        public var template: PasskeyTemplate {
            switch self {
            case .mixed: return Corpus.passkeyTemplate
            case .passkeyFirst: return Corpus.shortPasskeyTemplate
            }
        }

        /// The style whose wording `template` is (a model folder's passkey_prompt.json).
        public init?(template: PasskeyTemplate) {
            guard let style = Self.allCases.first(where: { $0.template == template }) else { return nil }
            self = style
        }
    }

    /// A passkey document of about `bytes` bytes (at least its fixed parts) with the key
    /// sentence at `depth` (0…1): the prompt up to and including the question, and the answer.
    public static func passkeyDocument(key: Int, bytes: Int, depth: Double, template t: PasskeyTemplate = passkeyTemplate,
                                       _ r: inout Random) -> (prompt: String, answer: String) {
        let needle = t.needle(key: key)
        var fillers: [String] = []
        var length = t.task.utf8.count + needle.utf8.count + t.question.utf8.count + 8
        while length < bytes {
            let f = r.chance(0.5) ? filler + " " : sentence(&r) + " "
            fillers.append(f)
            length += f.utf8.count
        }
        let at = Int((Double(fillers.count) * depth).rounded())
        var body = t.task
        for (i, f) in fillers.enumerated() {
            if i == at { body += needle }
            body += f
        }
        if at >= fillers.count { body += needle }
        return (body + t.question, t.answerPrefix + "\(key).")
    }

    /// About `size` bytes of text: documents separated by "\n\n", half of them passkey documents
    /// of 64…`maxDocument` bytes in `template`'s wording, the rest prose paragraphs.
    public static func generate(seed: UInt64, size: Int, maxDocument: Int = 1024, template: PasskeyTemplate = passkeyTemplate) -> String {
        var r = Random(seed: seed)
        var out = ""
        out.reserveCapacity(size + maxDocument)
        while out.utf8.count < size {
            if r.chance(0.5) {
                let bytes = 64 + r.int(max(1, maxDocument - 64))
                let doc = passkeyDocument(key: 10000 + r.int(90000), bytes: bytes, depth: Double(r.int(1001)) / 1000, template: template, &r)
                out += doc.prompt + doc.answer + "\n\n"
            } else {
                var paragraph = ""
                let sentences = 2 + r.int(8)
                for _ in 0..<sentences { paragraph += sentence(&r) + " " }
                out += paragraph.trimmingCharacters(in: .whitespaces) + "\n\n"
            }
        }
        return out
    }
}
