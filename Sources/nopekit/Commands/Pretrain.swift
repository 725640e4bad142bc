import ArgumentParser
import Checkpoints
import Engine
import Foundation
import Pretraining
import Verification

/// `nopekit corpus`: the synthetic training text of the model organisms.
struct CorpusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "corpus",
        abstract: "Write the deterministic synthetic corpus (grammar prose and passkey documents).")

    @Option(name: .long, help: "Random seed.")
    var seed: UInt64 = 314

    @Option(name: .long, help: ArgumentHelp("Size of the corpus, e.g. 10M.", valueName: "size"))
    var size: String = "10M"

    @Option(name: .long, help: "Longest passkey document in bytes.")
    var maxDocument: Int = 512

    @Option(name: .long, help: ArgumentHelp("The wording of the passkey documents: that of pretrain's --corpus mixed (the long task line) or passkey-first (the one-line task).", valueName: "style"))
    var style: Corpus.Style = .mixed

    @Option(name: .long, help: "Output text file (must not exist).")
    var out: String

    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        guard ByteSize.parse(size) != nil else { throw ValidationError("--size '\(size)' is not a size") }
        guard maxDocument >= 128 else { throw ValidationError("--max-document must be at least 128") }
    }

    func run() throws {
        let text = Corpus.generate(seed: seed, size: ByteSize.parse(size)!, maxDocument: maxDocument, template: style.template)
        let output = try AtomicOutput(finalPath: out, kind: .file)
        try Data(text.utf8).write(to: URL(fileURLWithPath: output.temporaryPath))
        try output.commit()
        Terminal.info("wrote \(out): \(ByteSize.format(text.utf8.count))")
    }
}

extension Corpus.Style: ExpressibleByArgument {}

/// `nopekit pretrain`: train a NoPE (or RoPE) model organism from scratch.
struct Pretrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a small Llama-family model from scratch on the synthetic corpus (byte-level vocabulary).",
        discussion: "Logs loss and tokens/s with ETA, evaluates held-out loss and passkey accuracy at the training length, and saves an HF folder (config.json with nopekit_position, model.safetensors, tokenizer.json, TRAINING.md). --resume continues from OUT/checkpoint.")

    enum Preset: String, ExpressibleByArgument, CaseIterable { case tiny, micro }

    @Option(name: .long, help: "Output folder.")
    var out: String

    @Option(name: .long, help: "Model size: tiny (4 layers, 192 wide, 6×32 heads, 2 KV, MLP 512; 1.7 M parameters) or micro (2 layers, 64 wide; for tests).")
    var preset: Preset = .tiny

    @Option(name: .long, help: "Training sequence length.")
    var length: Int = 256

    @Option(name: .long, help: "Optimiser steps.")
    var steps: Int = 3000

    @Option(name: .long, help: "Sequences per step.")
    var batch: Int = 16

    @Option(name: .long, help: "Peak learning rate.")
    var lr: Double = 2e-3

    @Option(name: .long, help: ArgumentHelp("Which layers are NoPE: none (all), rope (no layer), every:N (every N-th) or layers:i,j,… (0-based); the others use RoPE.", valueName: "pattern"))
    var position: String = "none"

    @Option(name: .long, help: ArgumentHelp("Causal sliding window (keys per query) on the RoPE layers, for a local-RoPE + global-NoPE hybrid.", valueName: "keys"))
    var slidingWindow: Int?

    @Option(name: .long, help: ArgumentHelp("How training sequences are drawn: mixed (windows of packed prose and passkey documents) or passkey-first (every sequence opens with a passkey document in a one-line wording, key at any depth).", valueName: "style"))
    var corpus: Corpus.Style = .mixed

    @Option(name: .long, help: "Random seed.")
    var seed: UInt64 = 314

    @Option(name: .long, help: "Evaluate (and checkpoint) every N steps.")
    var evalEvery: Int = 250

    @Flag(name: .long, help: "Continue from OUT/checkpoint.")
    var resume = false

    @Option(name: .long, help: ArgumentHelp("Instead of training, evaluate the model in OUT at these lengths (held-out loss by llama.cpp's chunk protocol, passkey accuracy, mean attention entropy).", valueName: "lengths"))
    var evaluate: String?

    @Option(name: .long, help: "Held-out sequences (and passkey prompts) per length for --evaluate.")
    var evalSequences: Int = 64

    @OptionGroup var compute: ComputeOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var runtime: RuntimeOptions

    func positionSpec() throws -> PositionSpec {
        do { return try PositionSpec(parsing: position) } catch { throw ValidationError("--position: \(error)") }
    }

    func validate() throws {
        _ = try positionSpec()
        if let slidingWindow, slidingWindow < 1 { throw ValidationError("--sliding-window must be at least 1 key") }
        guard length >= 16, steps >= 1, batch >= 1, evalEvery >= 1, lr > 0 else { throw ValidationError("length ≥ 16, steps, batch, eval-every ≥ 1, lr > 0") }
    }

    func run() throws {
        if let evaluate { return try runEvaluation(evaluate) }
        var o = Trainer.Options(output: out)
        if preset == .micro { (o.layers, o.hidden, o.heads, o.kvHeads, o.headDim, o.intermediate, o.corpusBytes, o.evalSequences) = (2, 64, 4, 2, 16, 128, 400_000, 16) }
        o.length = length; o.steps = steps; o.batch = batch; o.seed = seed; o.evalEvery = evalEvery
        o.position = try positionSpec()
        o.slidingWindow = slidingWindow
        o.corpus = corpus
        o.threads = compute.threads
        o.optimizer.learningRate = lr
        o.optimizer.warmupSteps = min(100, max(1, steps / 10))
        o.command = "nopekit " + CommandLine.arguments.dropFirst().joined(separator: " ")
        let trainer = try Trainer(o)
        if resume { try trainer.resume() } else if FileManager.default.fileExists(atPath: out) {
            throw FileError.outputExists(path: out)
        }
        let window = slidingWindow.map { ", a \($0)-key window on the RoPE layers" } ?? ""
        Terminal.info("training \(trainer.parameterCount) parameters, positions \(PositionSpec.describe(trainer.config.positions))\(window), \(batch) × \(length) tokens per step, \(steps) steps")
        let tokensPerStep = Double(batch * length)
        try trainer.run { e in
            let rate = tokensPerStep * Double(e.step - trainer.firstStep) / max(e.seconds, 1e-9)
            let eta = Double(steps - e.step) * e.seconds / Double(max(1, e.step - trainer.firstStep))
            var line = String(format: "step %5d  loss %.4f  lr %.2e  |g| %.2f  %.0f tok/s  ETA %.0fs", e.step, e.loss, e.learningRate, e.gradientNorm, rate, eta)
            if let h = e.heldOutLoss {
                line += String(format: "  held-out %.4f", h) + (e.passkeyAccuracy.map { String(format: "  passkey@%d %.0f%%", length, 100 * $0) } ?? "")
                Terminal.info(line)
                do { try trainer.save() } catch { Terminal.warn("checkpoint failed: \(error)") }
            } else if e.step % 10 == 0 || Terminal.isTTY {
                Terminal.info(line)
            }
        }
        try trainer.save()
        Terminal.info("saved \(out)")
    }
}

extension Pretrain {
    /// `--evaluate 256,512,…`: the organism's behaviour by length, on the held-out corpus of its seed.
    func runEvaluation(_ list: String) throws {
        let lengths = list.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !lengths.isEmpty, lengths.allSatisfy({ $0 >= 16 }) else { throw ValidationError("--evaluate takes lengths like 256,512,1024") }
        let opened = try OpenedModel(out, threads: compute.threads)
        let evaluation = Evaluation(model: opened.model)
        // The model's own wording (passkey_prompt.json) for the prompts, and the held-out text
        // of the corpus style that wording belongs to.
        let template = try PasskeyTemplate.resolve(explicit: nil, modelFolder: out).template
        let style = Corpus.Style(template: template) ?? .mixed
        let heldOut = Array(Corpus.generate(seed: seed &+ 1_000_003, size: max(400_000, evalSequences * lengths.max()! * 2), maxDocument: length * 2,
                                            template: style.template).utf8)
        var rows: [[String]] = []
        var json: [JSONValue] = []
        for L in lengths {
            let (loss, passkey) = try evaluation.run(heldOut: heldOut, length: L, sequences: evalSequences, template: template, seed: seed)
            let entropy = try evaluation.meanEntropy(heldOut: heldOut, length: L, sequences: max(4, evalSequences / 8))
            let mean = entropy.reduce(0, +) / Double(entropy.count)
            rows.append([String(L), String(format: "%.4f", loss), String(format: "%.3f", Foundation.exp(loss)),
                         passkey.map { String(format: "%.0f%%", 100 * $0) } ?? "–", String(format: "%.3f", mean),
                         entropy.map { String(format: "%.2f", $0) }.joined(separator: " ")])
            json.append(.object([JSONMember("length", .int(L)), JSONMember("loss", .double(loss)), JSONMember("perplexity", .double(Foundation.exp(loss))),
                                 JSONMember("passkey", passkey.map { .double($0) } ?? .null), JSONMember("entropy_bits", .double(mean)),
                                 JSONMember("entropy_bits_per_layer", .array(entropy.map { .double($0) }))]))
        }
        if output.json { Terminal.output(JSONWriter.pretty(.array(json), sortKeys: false)); return }
        Terminal.output(Terminal.table(rows, header: ["length", "loss", "ppl", "passkey", "entropy", "entropy by layer"], rightAligned: [0, 1, 2, 3, 4]))
    }
}
