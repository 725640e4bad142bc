import Checkpoints
import DataParallel
import Engine
import Foundation
import Tokenizers

/// One passkey retrieval prompt of the grid.
public struct PasskeyPrompt: Equatable, Sendable {
    public var length: Int          // the prompt's token budget
    public var depth: Int           // bucket 0…9: the needle sits at 10·depth % … 10·(depth+1) % of the filler
    public var trial: Int
    public var key: Int             // five digits
    public var fillers: Int         // n: filler pieces in the prompt
    public var needleSlot: Int      // k: filler pieces before the needle
    public var tokens: [Int]        // the prompt, with the tokenizer's special tokens (BOS)
    public var answer: [Int]        // what greedy decoding must produce
}

/// The passkey retrieval grid: lengths × 10 depth buckets × trials, every choice drawn from
/// one seeded SplitMix64 stream in that order (trials innermost), so that a reference script
/// rebuilds the same prompts token for token:
///
/// - per prompt, three draws: key = 10000 + r % 90000, u = unit(r), filler seed = r; the needle
///   depth is (bucket + u) / 10 of the filler;
/// - filler slot j is pool[g % pool.count] from a SplitMix64 seeded with the filler seed, so the
///   first n slots are the same whatever n is;
/// - text(n) = task + fillers[0..<k] + needle + fillers[k..<n] + question, k = ⌊n · depth⌋;
/// - n is the largest filler count whose tokens (special tokens included) fit the length, found
///   by doubling then bisection (the same steps in the reference, so they agree even where the
///   token count is not monotonic in n);
/// - the answer is what the tokenizer gives text(n) + answer_prefix + key beyond the prompt's
///   tokens (or answer_prefix + key alone when the two do not share the prompt as a prefix).
public struct PasskeyGrid: Sendable {
    public var lengths: [Int]
    public var trials: Int
    public var seed: UInt64
    public static let depths = 10

    public init(lengths: [Int], trials: Int = 5, seed: UInt64 = 42) {
        self.lengths = lengths; self.trials = trials; self.seed = seed
    }

    public func prompts(_ template: PasskeyTemplate, tokenizer: Tokenizer) throws -> [PasskeyPrompt] {
        var main = SplitMix64(seed: seed)
        var out: [PasskeyPrompt] = []
        for length in lengths {
            for depth in 0..<Self.depths {
                for trial in 0..<trials {
                    let key = 10000 + Int(main.next() % 90000)
                    let fraction = (Double(depth) + main.unit()) / Double(Self.depths)
                    var g = SplitMix64(seed: main.next())
                    var pool: [String] = []
                    func text(_ n: Int) -> String {
                        while pool.count < n { pool.append(template.filler[Int(g.next() % UInt64(template.filler.count))]) }
                        let k = Int(Double(n) * fraction)
                        return template.task + pool[0..<k].joined() + template.needle(key: key) + pool[k..<n].joined() + template.question
                    }
                    func count(_ n: Int) -> Int { tokenizer.encode(text(n)).count }
                    let bare = count(0)
                    guard bare <= length else { throw VerificationError.lengthTooShortForPrompt(length: length, needed: bare) }
                    var hi = 1
                    while count(hi) <= length { hi *= 2 }
                    var lo = hi / 2
                    while hi - lo > 1 {
                        let mid = (lo + hi) / 2
                        if count(mid) <= length { lo = mid } else { hi = mid }
                    }
                    let prompt = text(lo)
                    let tokens = tokenizer.encode(prompt)
                    let full = tokenizer.encode(prompt + template.answerPrefix + String(key))
                    let answer = full.count > tokens.count && Array(full[0..<tokens.count]) == tokens
                        ? Array(full[tokens.count...])
                        : tokenizer.encode(template.answerPrefix + String(key), addSpecialTokens: false)
                    out.append(PasskeyPrompt(length: length, depth: depth, trial: trial, key: key, fillers: lo,
                                             needleSlot: Int(Double(lo) * fraction), tokens: tokens, answer: answer))
                }
            }
        }
        return out
    }
}

/// One prompt's outcome.
public struct PasskeyOutcome: Equatable, Sendable {
    public var prompt: PasskeyPrompt
    /// The greedy tokens, up to and including the first wrong one.
    public var generated: [Int]
    public var correct: Bool { generated == prompt.answer }
}

/// Greedy decoding of each prompt's answer through the key/value cache: the prompt is one
/// prefill, each answer token one decode step. A prompt is right iff every answer token is
/// the argmax (exact match, as run_pass.py scores it); decoding stops at the first wrong one.
public struct PasskeyRun {
    public let model: LlamaModel
    public var temperatures: [[Float]?]?

    public init(model: LlamaModel, temperatures: [[Float]?]? = nil) {
        self.model = model
        self.temperatures = temperatures
    }

    /// Prompts are dealt out across `collective`'s ranks; the generated ids (exact as Float
    /// below 2^24) come back to every rank in prompt order.
    public func run(_ prompts: [PasskeyPrompt], collective: any Collective = SingleProcess(),
                    progress: (Int) throws -> Void = { _ in }) throws -> [PasskeyOutcome] {
        let capacity = prompts.map { $0.tokens.count + $0.answer.count }.max() ?? 0
        let cache = model.makeCache(capacity: capacity)
        let generated = try collective.map(prompts.count) { i in
            let p = prompts[i]
            cache.reset()
            var logits = try model.decode([p.tokens], cache: cache, temperatures: temperatures)
            var ids: [Float] = []
            for (j, expected) in p.answer.enumerated() {
                let next = greedyToken(logits)
                ids.append(Float(next))
                if next != expected || j == p.answer.count - 1 { break }
                logits = try model.decode([[next]], cache: cache, temperatures: temperatures)
            }
            try progress(i + 1)
            return ids
        }
        return zip(prompts, generated).map { PasskeyOutcome(prompt: $0, generated: $1.map { Int($0) }) }
    }

}

/// Accuracy per length and depth bucket.
public struct PasskeyAccuracy: Equatable, Sendable {
    public var lengths: [Int]
    /// [length][depth] fraction correct.
    public var grid: [[Double]]
    /// Mean over depths per length.
    public var byLength: [Double] { grid.map { $0.reduce(0, +) / Double(max(1, $0.count)) } }

    public init(_ outcomes: [PasskeyOutcome], lengths: [Int]) {
        self.lengths = lengths
        grid = lengths.map { L in
            (0..<PasskeyGrid.depths).map { d in
                let cell = outcomes.filter { $0.prompt.length == L && $0.prompt.depth == d }
                return Double(cell.filter(\.correct).count) / Double(max(1, cell.count))
            }
        }
    }
}
