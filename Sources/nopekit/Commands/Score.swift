import ArgumentParser
import Checkpoints
import Engine
import Foundation
import Tokenizers
import Verification

/// `nopekit score`: log-loss, perplexity and (optionally) attention entropy of a model on a text.
struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Log-loss and perplexity of a model on a text or token file, optionally with temperatures and per-head attention entropy.",
        discussion: "An input of up to --window tokens is scored as one sequence (BOS first for --text when the tokenizer adds it); a longer one in overlapping windows of --window tokens, each token once with at least half a window of context. A token file is a JSON array of ids or raw little-endian uint32.")

    @Argument(help: "Model folder, .safetensors or .gguf file.")
    var model: String

    @Option(name: .long, help: "A UTF-8 text file, tokenized with the model's own tokenizer.")
    var text: String?

    @Option(name: .long, help: "A token file (JSON array of ids or raw little-endian uint32).")
    var tokens: String?

    @Option(name: .long, help: "A temperature table (*.temps.json) applied at run time.")
    var temps: String?

    @Flag(name: .long, help: "Also report each layer's per-head mean attention entropy (bits).")
    var entropy = false

    @Flag(name: .customLong("per-token"), help: "With --json, include every token's loss.")
    var perToken = false

    @Option(name: .long, help: "Longest sequence run at once; longer inputs are scored in overlapping windows of this many tokens.")
    var window: Int = 4096

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var compute: ComputeOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        guard (text == nil) != (tokens == nil) else { throw ValidationError("give exactly one of --text FILE or --tokens FILE") }
        guard window >= 16 else { throw ValidationError("--window must be at least 16") }
    }

    func run() throws {
        let opened = try OpenedModel(model, position: try modelOptions.positionSpec, threads: compute.threads)
        let ids: [Int]
        if let text {
            guard let tokenizer = opened.tokenizer else { throw ValidationError("\(model) has no tokenizer; give --tokens FILE") }
            ids = tokenizer.encode(try TokenStream.readText(text))
        } else {
            ids = try TokenFile.read(tokens!)
        }
        guard ids.count >= 2 else { throw ValidationError("need at least two tokens to score") }
        var temperatures: [[Float]?]? = nil
        if let temps {
            let table = try TemperatureTable.load(temps)
            try table.check(against: opened.config, file: temps)
            temperatures = table.scales
        }
        let start = Date()
        let progress = WindowProgress()
        let score = try SequenceScore.score(opened.model, tokens: ids, temperatures: temperatures, entropy: entropy, window: window,
                                            progress: progress.update)
        let seconds = Date().timeIntervalSince(start)
        if output.json {
            var members: [JSONMember] = [
                JSONMember("tokens", .int(score.tokens)), JSONMember("scored", .int(score.losses.count)), JSONMember("windows", .int(score.windows)),
                JSONMember("total_loss", .double(score.totalLoss)), JSONMember("mean_loss", .double(score.meanLoss)),
                JSONMember("perplexity", .double(score.perplexity)), JSONMember("seconds", .double(seconds)),
                JSONMember("temperatures", temps.map { .string($0) } ?? .null),
            ]
            if entropy {
                members.append(JSONMember("entropy_bits", .array(score.entropy.map { .array($0.map { .double($0) }) })))
            }
            if perToken { members.append(JSONMember("losses", .array(score.losses.map { .double(Double($0)) }))) }
            Terminal.output(JSONWriter.pretty(.object(members), sortKeys: false))
            return
        }
        var lines = [String(format: "%d tokens, %d scored%@: mean loss %.4f nats, perplexity %.3f (%.2f s)", score.tokens, score.losses.count,
                            score.windows > 1 ? " in \(score.windows) windows of \(window)" : "", score.meanLoss, score.perplexity, seconds)]
        for (l, row) in score.entropy.enumerated() {
            lines.append(String(format: "layer %2d entropy (bits): ", l) + row.map { String(format: "%.2f", $0) }.joined(separator: " "))
        }
        Terminal.output(lines.joined(separator: "\n"))
    }
}

/// "window i of n" on stderr when it is a terminal and there is more than one window.
final class WindowProgress {
    func update(_ done: Int, _ total: Int) {
        guard Terminal.isTTY, total > 1 else { return }
        FileHandle.standardError.write(Data("\rscoring window \(done) of \(total)".utf8))
        if done == total { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
