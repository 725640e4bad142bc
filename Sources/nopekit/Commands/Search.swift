import ArgumentParser
import Checkpoints
import Foundation
import TemperatureSearch
import Verification

/// `nopekit search`: compute the per-head temperatures of a model at a target length.
struct SearchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Search per-head softmax temperatures (scales s_h) that extend a model to --target-length.",
        discussion: """
            Methods: headscale (the paper's: gradient descent on the loss at the target length, \
            every weight frozen), uniform (one scale for all searched heads, golden-section search \
            on the held-out loss), entropy (EXPERIMENTAL, forward only: match each head's \
            normalised attention entropy at the target length to its value at the training length). \
            By default only NoPE layers are searched. The table records the held-out loss before \
            and after at the target and the training length.
            """)

    enum Schedule: String, ExpressibleByArgument, CaseIterable { case paper, fast }
    enum Granularity: String, ExpressibleByArgument, CaseIterable { case head, layer }

    @Argument(help: "Model folder, .safetensors or .gguf file.")
    var model: String

    @Option(name: .long, help: "headscale, uniform or entropy (experimental).")
    var method: Search.Method = .headscale

    @Option(name: .long, help: "Calibration data: UTF-8 text, JSONL with a \"text\" field, or a token file (.tokens/.bin/.json).")
    var data: String

    @Option(name: .customLong("target-length"), help: "The length to extend the model to.")
    var targetLength: Int

    @Option(name: .customLong("training-length"), help: "The length the model was trained at (default: config max_position_embeddings).")
    var trainingLength: Int?

    @Option(name: .long, help: "Output table (*.temps.json); must not exist unless --resume.")
    var out: String

    @Option(name: .long, help: "Layers to search: nope (default), all, or a list such as 1,3.")
    var layers: String = "nope"

    @Option(name: .long, help: "head (one scale per head) or layer (heads of a layer tied; the default for a q-norm shared by all heads).")
    var granularity: Granularity?

    @Option(name: .long, help: "headscale's starting scale, or 'uniform' to start from the uniform search's answer.")
    var `init`: String = "1.6"

    @Option(name: .long, help: "Peak learning rate (headscale).")
    var lr: Double?

    @Option(name: .long, help: "Optimiser steps (headscale).")
    var steps: Int?

    @Option(name: .long, help: "Sequences per step (headscale; gradient accumulation).")
    var batch: Int?

    @Option(name: .customLong("min-scale"), help: "The focus constraint: every scale stays ≥ this.")
    var minScale: Float = 1

    @Option(name: .customLong("max-scale"), help: "Upper bound of the entropy bisection.")
    var maxScale: Float = 4

    @Option(name: .long, help: "paper (200 steps × 8 sequences) or fast (the cheaper schedule measured in docs/benchmarks.md). --steps/--batch/--lr override either.")
    var schedule: Schedule = .paper

    @Option(name: .long, help: "Random seed (data order).")
    var seed: UInt64 = 314

    @Option(name: .customLong("eval-sequences"), help: "Held-out windows per loss report.")
    var evalSequences: Int = 8

    @Flag(name: .long, help: "Continue a headscale search from OUT.state.json.")
    var resume = false

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var compute: ComputeOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        guard targetLength >= 16 else { throw ValidationError("--target-length must be at least 16") }
        if let trainingLength, trainingLength < 2 { throw ValidationError("--training-length must be at least 2") }
        guard `init` == "uniform" || (Float(`init`).map { $0 > 0 } ?? false) else { throw ValidationError("--init must be a positive number or 'uniform'") }
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1") }
        if let batch, batch < 1 { throw ValidationError("--batch must be at least 1") }
        if let lr, !(lr > 0) { throw ValidationError("--lr must be positive") }
        guard minScale > 0, maxScale > minScale else { throw ValidationError("need 0 < --min-scale < --max-scale") }
        guard evalSequences >= 1 else { throw ValidationError("--eval-sequences must be at least 1") }
        if !resume && FileManager.default.fileExists(atPath: out) { throw ValidationError("\(out) exists; choose another --out (or --resume)") }
    }

    func run() throws {
        let opened = try OpenedModel(model, position: try modelOptions.positionSpec, threads: compute.threads)
        let (checkpoint, config) = (opened.checkpoint, opened.config)
        guard let training = trainingLength ?? config.maxPositionEmbeddings else {
            throw ValidationError("the config has no max_position_embeddings; give --training-length")
        }
        let searched = try SearchProblem.layers(layers, config: config, model: model)
        var level: SearchProblem.Granularity = granularity == .layer ? .layer : .head
        if granularity == nil && SearchProblem.defaultGranularity(config, store: checkpoint.store) == .layer {
            level = .layer
            Terminal.note("this model's q-norm weight is shared by all heads of a layer, so only a per-layer temperature can be baked into it: searching with --granularity layer")
        }
        let data = try CalibrationData.load(self.data, tokenizer: opened.tokenizer, bos: opened.bos)
        let problem = try SearchProblem(model: opened.model, data: data, searchedLayers: searched, granularity: level,
                                        targetLength: targetLength, trainingLength: training, evalSequences: evalSequences)
        problem.collective = Job.collective
        var request = Search.Request()
        request.method = method
        if request.method == .entropy {
            Terminal.warn("--method entropy is experimental: compare its held-out loss with headscale and uniform before using it")
        }
        request.headscale = schedule == .fast ? .fast : .paper
        if let steps { request.headscale.steps = steps }
        if let batch { request.headscale.batch = batch }
        if let lr { request.headscale.learningRate = lr }
        request.headscale.minScale = minScale
        request.headscale.seed = seed
        request.schedule = schedule.rawValue
        request.initialScale = `init` == "uniform" ? nil : Float(`init`)!
        request.maxScale = maxScale
        request.statePath = out + ".state.json"
        request.resume = resume
        request.source = checkpoint.path
        // Only rank 0 writes the table, so only it reads the whole checkpoint to hash it.
        request.sourceSHA256 = Job.isLeader ? try SHA256.checkpoint(files: checkpoint.store.tensors.map(\.file)) : nil
        let table = try Search.run(problem, request) { Terminal.info($0) }
        guard Job.isLeader else { return }   // every rank holds the same table; rank 0 writes it
        try AtomicOutput.write(Array((JSONWriter.pretty(table.json, sortKeys: false) + "\n").utf8), to: out, replacing: resume)
        try? FileManager.default.removeItem(atPath: request.statePath!)
        Terminal.info("wrote \(out)")
        if output.json { Terminal.output(JSONWriter.pretty(table.json, sortKeys: false)) }
    }
}

/// `--method headscale|uniform|entropy`, parsed (and listed in --help) by the argument parser.
extension Search.Method: ExpressibleByArgument {}
