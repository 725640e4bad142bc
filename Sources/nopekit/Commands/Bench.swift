import ArgumentParser
import Checkpoints
import Foundation
import Tokenizers

/// `nopekit bench`: performance measured, not guessed. Each subcommand prints its figures
/// (and `--json` for scripts); targets live in docs/benchmarks.md.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure nopekit's speed on this machine.",
        subcommands: [BenchTokenize.self])
}

/// Tokenizer throughput on a synthetic multilingual text.
struct BenchTokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Tokenizer throughput (MB/s) on one core.")

    @Argument(help: "Tokenizers to measure (folders, tokenizer.json or .gguf files).")
    var models: [String]

    @Option(name: .long, help: "Megabytes of text to tokenize.")
    var megabytes: Double = 10

    @Option(name: .long, help: "A text file to use instead of the built-in synthetic text.")
    var text: String?

    @OptionGroup var output: OutputOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        guard megabytes > 0, megabytes <= 1000 else { throw ValidationError("--megabytes must be in (0, 1000]") }
        guard !models.isEmpty else { throw ValidationError("give at least one tokenizer") }
    }

    func run() throws {
        let body = try text.map { try String(contentsOfFile: $0, encoding: .utf8) } ?? SyntheticText.make(bytes: Int(megabytes * 1e6))
        // Lines of about 1 KB, as a corpus would be fed.
        let lines = body.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var results: [JSONValue] = []
        for path in models {
            let tokenizer = try Tokenizer.load(path)
            let start = DispatchTime.now().uptimeNanoseconds
            var tokens = 0
            for line in lines { tokens += tokenizer.encode(line, addSpecialTokens: false).count }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let mbps = Double(body.utf8.count) / 1e6 / seconds
            Terminal.info(String(format: "%@: %.2f MB in %.2f s = %.2f MB/s, %d tokens (%.2f bytes/token)", path,
                                 Double(body.utf8.count) / 1e6, seconds, mbps, tokens, Double(body.utf8.count) / Double(max(1, tokens))))
            results.append(.object([JSONMember("tokenizer", .string(path)), JSONMember("kind", .string(tokenizer.kind.rawValue)),
                                    JSONMember("bytes", .int(body.utf8.count)), JSONMember("seconds", .double(seconds)),
                                    JSONMember("mb_per_s", .double(mbps)), JSONMember("tokens", .int(tokens))]))
        }
        if output.json { Terminal.output(JSONWriter.pretty(.array(results), sortKeys: false)) }
    }
}

/// A deterministic mixed-language text for tokenizer benchmarks: English-like sentences with
/// numbers, code and some non-Latin scripts, in lines of about a kilobyte.
enum SyntheticText {
    static let words = ["the", "model", "attention", "length", "temperature", "head", "scale", "sequence", "token", "layer",
                        "position", "without", "encoding", "extends", "beyond", "training", "retrieval", "passkey", "remember",
                        "Zürich", "naïve", "façade", "Москва", "東京", "数据", "αβγ", "मॉडल", "🙂", "don't", "it's",
                        "for i in range(10):", "{\"key\": [1, 2, 3]}", "3.14159", "2048", "x = y + 1;", "https://example.org/a?b=c"]

    static func make(bytes target: Int) -> String {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(truncatingIfNeeded: state >> 33)
        }
        var out = ""
        out.reserveCapacity(target + 2048)
        while out.utf8.count < target {
            var sentence = ""
            while sentence.utf8.count < 1000 {
                sentence += words[next() % words.count]
                sentence += next() % 9 == 0 ? ". " : " "
            }
            out += sentence + "\n"
        }
        return out
    }
}
