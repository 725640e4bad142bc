import Checkpoints
import Engine
import Foundation
import Testing
import Tokenizers
@testable import Verification

/// The verification metrics against scripts/reference/make_verify_fixtures.py: a float64
/// PyTorch run of the bundled organism (perplexity by both protocols, per-head entropy) and an
/// independent Python construction of the passkey prompts tokenized by HF `tokenizers`.
@Suite struct VerificationGoldenTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func path(_ p: String) -> String { root.appendingPathComponent(p).path }
    static let expected: JSONValue = {
        let data = FileManager.default.contents(atPath: path("fixtures/verify/expected.json"))!
        return try! JSONReader.parse([UInt8](data))
    }()

    struct Organism {
        let model: LlamaModel
        let stream: [Int]
        let scales: [[Float]?]
        init() throws {
            let checkpoint = try Checkpoint.open(VerificationGoldenTests.path("fixtures/organism"))
            model = try LlamaModel(store: checkpoint.store, config: try checkpoint.requireConfig(), policy: .resident)
            let tokenizer = try Tokenizer.load(VerificationGoldenTests.path("fixtures/organism"))
            stream = try TokenStream.read(VerificationGoldenTests.path("fixtures/verify/eval.txt"), tokenizer: tokenizer).ids
            scales = try TemperatureTable.load(VerificationGoldenTests.path("fixtures/verify/organism.temps.json")).scales
        }
    }

    @Test func evaluationStreamIsTheReferenceTokenization() throws {
        let o = try Organism()
        let eval = Self.expected["eval"]!
        #expect(o.stream.count == eval["tokens"]!.intValue)
        #expect(Array(o.stream.prefix(8)) == eval["first_ids"]!.arrayValue!.map { $0.intValue! })
    }

    @Test func perplexityMatchesReference() throws {
        let o = try Organism()
        let cases = Self.expected["perplexity"]!.arrayValue!
        #expect(cases.count == 12)
        for c in cases {
            let method = PerplexityProtocol(rawValue: c["protocol"]!.stringValue!)!
            let length = c["length"]!.intValue!
            let temps = c["temps"]!.boolValue!
            let budget = c["max_tokens"]!.intValue ?? .max
            let p = Perplexity(model: o.model, temperatures: temps ? o.scales : nil)
            let r = try p.measure(method, stream: o.stream, length: length, stride: c["stride"]?.intValue ?? 256, bos: 256, maxTokens: budget)
            let what = "\(method) L=\(length) temps=\(temps) budget=\(budget)"
            #expect(r.windows == c["windows"]!.intValue!, "\(what): windows")
            #expect(r.tokens == c["scored"]!.intValue!, "\(what): scored tokens")
            // F32 engine against float64: per-token losses agree to ~1e-5 nats (GoldenForwardTests)
            #expect(abs(r.meanLoss - c["mean_nll"]!.doubleValue!) < 2e-5, "\(what): mean NLL \(r.meanLoss) vs \(c["mean_nll"]!)")
            let se = c["standard_error"]!.doubleValue!
            #expect(abs(r.standardError - se) <= 1e-4 * se, "\(what): standard error \(r.standardError) vs \(se)")
        }
    }

    @Test func entropyMatchesReference() throws {
        let o = try Organism()
        for c in Self.expected["entropy"]!.arrayValue! {
            let length = c["length"]!.intValue!, temps = c["temps"]!.boolValue!
            let windows = Array(Perplexity.windows(.chunks, stream: o.stream, length: length, bos: 256).windows.prefix(c["windows"]!.intValue!))
            let bits = try AttentionEntropy.measure(o.model, windows: windows, temperatures: temps ? o.scales : nil)
            let reference = c["mean_bits"]!.arrayValue!.map { $0.arrayValue!.map { $0.doubleValue! } }
            let worst = zip(bits.joined(), reference.joined()).map { abs($0 - $1) }.max()!
            #expect(bits.count == reference.count && worst < 1e-4, "L=\(length) temps=\(temps): max |Δ| \(worst) bits")
            #expect(abs(c["log2_length"]!.doubleValue! - AttentionEntropy.ceiling(length: length)) < 1e-12)
        }
    }

    @Test func splitMixMatchesReference() {
        let s = Self.expected["passkey"]!["splitmix64"]!
        var g = SplitMix64(seed: UInt64(s["seed"]!.stringValue!)!)
        #expect(s["first"]!.arrayValue!.map { UInt64($0.stringValue!)! } == (0..<4).map { _ in g.next() })
    }

    static func template(_ j: JSONValue) throws -> PasskeyTemplate { try PasskeyTemplate(json: j, file: "expected.json") }

    @Test func passkeyPromptsMatchReferenceTokenization() throws {
        let cases = Self.expected["passkey"]!["cases"]!.arrayValue!
        #expect(cases.count == 3)
        for c in cases {
            let tokenizer = try Tokenizer.load(Self.path(c["tokenizer"]!.stringValue!))
            let grid = PasskeyGrid(lengths: c["lengths"]!.arrayValue!.map { $0.intValue! }, trials: c["trials"]!.intValue!,
                                   seed: UInt64(c["seed"]!.intValue!))
            let prompts = try grid.prompts(try Self.template(c["template"]!), tokenizer: tokenizer)
            let reference = c["prompts"]!.arrayValue!
            #expect(prompts.count == reference.count)
            for (p, r) in zip(prompts, reference) {
                let what = "\(c["name"]!.stringValue!) L=\(p.length) depth \(p.depth) trial \(p.trial)"
                #expect(p.key == r["key"]!.intValue! && p.fillers == r["n"]!.intValue! && p.needleSlot == r["k"]!.intValue!, "\(what): key, n, k")
                #expect(p.tokens == r["prompt_ids"]!.arrayValue!.map { $0.intValue! }, "\(what): prompt tokens")
                #expect(p.answer == r["answer_ids"]!.arrayValue!.map { $0.intValue! }, "\(what): answer tokens")
                #expect(p.tokens.count <= p.length)
            }
        }
    }

    @Test func lengthsBelowTheBarePromptAreRefused() throws {
        for e in Self.expected["passkey"]!["errors"]!.arrayValue! {
            let tokenizer = try Tokenizer.load(Self.path(e["tokenizer"]!.stringValue!))
            let template = e["name"]!.stringValue! == "organism"
                ? try PasskeyTemplate.load(Self.path("fixtures/organism/passkey_prompt.json")) : PasskeyTemplate.paper
            let grid = PasskeyGrid(lengths: e["lengths"]!.arrayValue!.map { $0.intValue! }, trials: 1, seed: 1)
            #expect(throws: VerificationError.self) { try grid.prompts(template, tokenizer: tokenizer) }
        }
    }

    /// The paper's template here is the one the reference used.
    @Test func paperTemplateIsTheReferenceOne() throws {
        let c = Self.expected["passkey"]!["cases"]!.arrayValue!.first { $0["name"]!.stringValue! != "organism" }!
        #expect(try Self.template(c["template"]!) == PasskeyTemplate.paper)
    }
}

/// `score` on inputs longer than its window (issue 13: a 20 MB text asked for 14.6 GB): every
/// token after the first is scored exactly once, and a window as long as the input gives the
/// single pass's losses.
@Suite struct WindowedScoreTests {
    @Test(arguments: [(10, 100), (100, 100), (101, 100), (250, 64), (1000, 16), (17, 16)])
    func everyTokenIsScoredOnce(_ n: Int, _ window: Int) {
        let plan = SequenceScore.windows(count: n, window: window)
        var targets: [Int] = []
        for w in plan {
            #expect(w.range.count <= window && w.range.upperBound <= n)
            targets += w.scored.map { w.range.lowerBound + $0 + 1 }
            if w.range.lowerBound > 0 { #expect(w.scored.lowerBound >= window / 2 - 1, "context before the first scored token") }
        }
        #expect(targets == Array(1..<n), "n \(n), window \(window)")
    }

    @Test func windowedLossesEqualOnePassWhereContextAgrees() throws {
        let o = try VerificationGoldenTests.Organism()
        let ids = Array(o.stream.prefix(300))
        let whole = try SequenceScore.score(o.model, tokens: ids)
        let windowed = try SequenceScore.score(o.model, tokens: ids, window: 128)
        #expect(windowed.losses.count == whole.losses.count && windowed.windows > 1)
        // the first window's losses see the same context as the single pass
        #expect(zip(windowed.losses.prefix(127), whole.losses.prefix(127)).allSatisfy { abs($0 - $1) < 1e-5 })
        let same = try SequenceScore.score(o.model, tokens: ids, window: 300)
        #expect(same.windows == 1 && same.losses == whole.losses)
    }
}
