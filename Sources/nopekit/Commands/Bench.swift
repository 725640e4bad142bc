import ArgumentParser
import Checkpoints
import Engine
import BenchSupport
import Foundation
import Pretraining
import Tokenizers

/// `nopekit bench`: performance measured, not guessed. Each subcommand prints its figures
/// (and `--json` for scripts); targets live in docs/benchmarks.md.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure nopekit's speed on this machine.",
        subcommands: [BenchForward.self, BenchSearch.self, BenchTrain.self, BenchTokenize.self, BenchBake.self])
}

/// One forward pass: throughput against the machine's own sgemm, measured in the same run.
struct BenchForward: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Forward-pass tokens/s and GFLOP/s, as a fraction of measured sgemm GFLOP/s, and peak RSS.")

    @OptionGroup var bench: BenchRunOptions

    @Flag(name: .long, help: "Also compute attention entropy (as the searches do).")
    var entropy = false

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var compute: ComputeOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var runtime: RuntimeOptions


    func run() throws {
        let (model, length) = (bench.model, bench.length)
        let (store, config) = try BenchModel.open(model, position: try modelOptions.positionSpec)
        let engine = try LlamaModel(store: store, config: config, policy: .resident, threads: compute.threads)
        let weightsRSS = MemoryUsage.currentBytes
        let tokens = [(0..<length).map { ($0 * 7919 + 13) % config.vocab }]
        let request = ForwardRequest(tokens: tokens, losses: true, entropy: entropy)
        let best = try bench.fastest { _ = try engine.forward(request) }
        let peak = MemoryUsage.peakBytes
        let flops = SyntheticModel.forwardFLOPs(config, tokens: length)
        let gflops = flops / best / 1e9
        let sgemm = BLASRuntime.measureSgemm(n: 2048, seconds: 1).gflops
        let json = JSONValue.object([
            JSONMember("model", .string(model ?? "synthetic \(bench.shape)")), JSONMember("length", .int(length)),
            JSONMember("threads", .int(compute.threads)), JSONMember("blas_core", .string(BLASRuntime.coreName)),
            JSONMember("seconds", .double(best)), JSONMember("tokens_per_s", .double(Double(length) / best)),
            JSONMember("gflop", .double(flops / 1e9)), JSONMember("gflops", .double(gflops)),
            JSONMember("sgemm_gflops", .double(sgemm)), JSONMember("ratio_to_sgemm", .double(gflops / sgemm)),
            JSONMember("peak_rss_bytes", .int(peak)), JSONMember("rss_after_load_bytes", .int(weightsRSS)),
            JSONMember("peak_rss_beyond_weights_bytes", .int(peak - weightsRSS)),
        ])
        if output.json { Terminal.output(JSONWriter.pretty(json, sortKeys: false)); return }
        Terminal.output(String(format: "forward T=%d: %.2f s, %.1f tokens/s, %.1f GFLOP/s = %.0f%% of sgemm (%.1f GFLOP/s, %@), peak RSS %@ (%@ beyond the loaded weights)",
                               length, best, Double(length) / best, gflops, 100 * gflops / sgemm, sgemm, BLASRuntime.coreName,
                               ByteSize.format(peak), ByteSize.format(peak - weightsRSS)))
    }
}

/// What every model benchmark takes: the model (a checkpoint or random weights of a shape), the
/// sequence length and the repetitions (the fastest is reported).
struct BenchRunOptions: ParsableArguments {
    @Option(name: .long, help: "A model to run (default: random weights of --shape).")
    var model: String?

    @Option(name: .long, help: "Shape of the random model: tinyllama.")
    var shape: String = "tinyllama"

    @Option(name: .long, help: "Sequence length.")
    var length: Int = 2048

    @Option(name: .long, help: "Timed repetitions (after one warm-up when --repeat > 1).")
    var `repeat`: Int = 1

    func validate() throws {
        guard length >= 2, length <= 1 << 20 else { throw ValidationError("--length must be at least 2") }
        guard shape == "tinyllama" || model != nil else { throw ValidationError("--shape must be tinyllama (or give --model)") }
        guard `repeat` >= 1 else { throw ValidationError("--repeat must be at least 1") }
    }

    /// The fastest of `repeat` timed runs of `body` (after one warm-up run when repeat > 1).
    func fastest(_ body: () throws -> Void) rethrows -> Double {
        if `repeat` > 1 { try body() }
        var best = Double.infinity
        for _ in 0..<`repeat` {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return best
    }
}

/// The model a benchmark runs: a checkpoint, or random weights of the TinyLlama shape.
enum BenchModel {
    static func open(_ path: String?, position: PositionSpec?) throws -> (any TensorStore, ModelConfig) {
        if let path {
            let checkpoint = try Checkpoint.open(path, position: position)
            return (checkpoint.store, try checkpoint.requireConfig())
        }
        var config = SyntheticModel.tinyLlamaConfig()
        if let position { config.positions = try position.resolve(layerCount: config.layers) }
        let synthetic = SyntheticModel(config: config)
        return (synthetic, synthetic.config)
    }
}

/// One step of the HeadScale search (one sequence: forward, λ-only backward on frozen weights),
/// against a forward pass of the same sequence.
struct BenchSearch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Seconds per sequence of a headscale step, its ratio to one forward pass, and peak RSS beyond the weights.",
        discussion: "Weights are read layer by layer from the checkpoint (streaming), as the search reads them. Compare with scripts/bench/torch_search_step.py (the same frozen-weight step in PyTorch), run right after it on the same idle machine.")

    @OptionGroup var bench: BenchRunOptions

    @Option(name: .long, help: "Activations: auto (the fastest that fits 2 GiB, as the search chooses), keep, keep-attention or recompute.")
    var activations: String = "auto"

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var compute: ComputeOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        guard activations == "auto" || Backprop.Activations(rawValue: activations) != nil else {
            throw ValidationError("--activations must be auto, keep, keep-attention or recompute")
        }
    }

    func run() throws {
        let (model, length) = (bench.model, bench.length)
        let (store, config) = try BenchModel.open(model, position: try modelOptions.positionSpec)
        let engine = try LlamaModel(store: store, config: config, policy: .streaming, threads: compute.threads)
        let weightsRSS = MemoryUsage.currentBytes
        let tokens = [(0..<length).map { ($0 * 7919 + 13) % config.vocab }]
        let backprop = Backprop(config: config, threads: compute.threads)
        let all = Array(repeating: true, count: config.layers)
        let scales = Array(repeating: Array(repeating: Float(1.6), count: config.heads), count: config.layers)
        let policy = Backprop.Activations(rawValue: activations)
            ?? backprop.activations(sequences: 1, length: length, searchedFrom: 0, budget: 2 << 30)
        let step = try bench.fastest { _ = try backprop.lossAndTemperatureGradient(engine, tokens: tokens, lambda: scales, searched: all, activations: policy) }
        let stepPeak = MemoryUsage.peakBytes
        let forward = try bench.fastest { _ = try engine.forward(ForwardRequest(tokens: tokens, temperatures: scales.map { Optional($0) }, losses: true)) }
        let json = JSONValue.object([
            JSONMember("model", .string(model ?? "synthetic \(bench.shape)")), JSONMember("length", .int(length)),
            JSONMember("threads", .int(compute.threads)), JSONMember("blas_core", .string(BLASRuntime.coreName)),
            JSONMember("activations", .string(policy.rawValue)),
            JSONMember("step_seconds", .double(step)), JSONMember("forward_seconds", .double(forward)),
            JSONMember("step_to_forward", .double(step / forward)), JSONMember("tokens_per_s", .double(Double(length) / step)),
            JSONMember("rss_after_load_bytes", .int(weightsRSS)), JSONMember("step_peak_rss_bytes", .int(stepPeak)),
            JSONMember("step_peak_rss_beyond_weights_bytes", .int(stepPeak - weightsRSS)),
        ])
        if output.json { Terminal.output(JSONWriter.pretty(json, sortKeys: false)); return }
        Terminal.output(String(format: "search step T=%d (activations: %@): %.3f s per sequence, forward %.3f s (step = %.2f × forward); peak RSS %@ beyond the loaded weights (%@)",
                               length, policy.rawValue, step, forward, step / forward,
                               ByteSize.format(stepPeak - weightsRSS), BLASRuntime.coreName))
    }
}

/// One training step (forward, backward, AdamW) of a model organism.
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Seconds per training step, tokens/s, and the ratio to a forward-only pass of the same batch.")

    @Option(name: .long, help: "Model size: tiny (the bundled organism's shape).")
    var preset: String = "tiny"

    @Option(name: .long, help: "Sequence length.")
    var length: Int = 256

    @Option(name: .long, help: "Sequences per step.")
    var batch: Int = 16

    @Option(name: .long, help: "Timed steps (after 2 warm-up steps); the median is reported.")
    var steps: Int = 10

    @OptionGroup var compute: ComputeOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        guard preset == "tiny" else { throw ValidationError("--preset must be tiny") }
        guard length >= 16, batch >= 1, steps >= 1 else { throw ValidationError("--length ≥ 16, --batch and --steps ≥ 1") }
    }

    func run() throws {
        var o = Trainer.Options(output: "/dev/null")
        o.length = length; o.batch = batch; o.steps = steps + 2; o.evalEvery = Int.max; o.threads = compute.threads
        o.corpusBytes = max(200_000, batch * length * 4)
        let trainer = try Trainer(o)
        var times: [Double] = []
        var previous = 0.0
        try trainer.run { e in
            if e.step > 2 { times.append(e.seconds - previous) }
            previous = e.seconds
        }
        times.sort()
        let step = times[times.count / 2]
        let engine = try LlamaModel(store: ParameterStore(trainer.parameters), config: trainer.config, policy: .resident, threads: compute.threads)
        let tokens = (0..<batch).map { b in (0..<length).map { ($0 * 31 + b * 7) % 256 } }
        var forwardTimes: [Double] = []
        for _ in 0..<3 {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try engine.forward(ForwardRequest(tokens: tokens, losses: true))
            forwardTimes.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        let forward = forwardTimes.min()!
        let tokensPerStep = Double(batch * length)
        let json = JSONValue.object([
            JSONMember("preset", .string(preset)), JSONMember("parameters", .int(trainer.parameterCount)),
            JSONMember("batch", .int(batch)), JSONMember("length", .int(length)), JSONMember("threads", .int(compute.threads)),
            JSONMember("seconds_per_step", .double(step)), JSONMember("tokens_per_s", .double(tokensPerStep / step)),
            JSONMember("forward_seconds", .double(forward)), JSONMember("step_to_forward_ratio", .double(step / forward)),
        ])
        if output.json { Terminal.output(JSONWriter.pretty(json, sortKeys: false)); return }
        Terminal.output(String(format: "train step (%d × %d, %d parameters): %.3f s median, %.0f tokens/s; forward only %.3f s (step = %.2f × forward)",
                               batch, length, trainer.parameterCount, step, tokensPerStep / step, forward, step / forward))
    }
}

/// Bake throughput against `cp` of the same files (docs/benchmarks.md: ≥ 0.8× for a 1 GB model).
struct BenchBake: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bake",
        abstract: "Bake a seeded per-head table into a checkpoint and compare the time with cp of the same files.")

    @Option(name: .long, help: "The checkpoint to bake (folder, .safetensors or .gguf).")
    var model: String

    @Option(name: .long, help: "Scratch folder for the outputs (removed after each run); same file system as a real bake's output.")
    var workdir: String = "/tmp/nopekit-bench-bake"

    @Option(name: .long, help: "Runs of each (the fastest is kept).")
    var `repeat`: Int = 3

    @OptionGroup var output: OutputOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        guard `repeat` >= 1 else { throw ValidationError("--repeat must be at least 1") }
    }

    func run() throws {
        let r = try BakeBenchmark.run(model: model, workdir: workdir, repeats: `repeat`)
        let gb = Double(r.bytes) / 1e9
        Terminal.info(String(format: "%@: %.2f GB of tensors (%.1f MB scaled)", model, gb, Double(r.changedBytes) / 1e6))
        Terminal.info(String(format: "bake %.2f s (%.2f GB/s; the first, hashing the source: %.2f s); cp %.2f s; cp + sync %.2f s",
                             r.bakeSeconds, gb / r.bakeSeconds, r.coldBakeSeconds, r.copySeconds, r.copySyncSeconds))
        Terminal.info(String(format: "bake throughput / cp: %.2f×; / (cp + sync): %.2f× (first bake: %.2f×, %.2f×)", r.ratioToCopy, r.ratioToCopySync,
                             r.copySeconds / r.coldBakeSeconds, r.copySyncSeconds / r.coldBakeSeconds))
        if output.json {
            Terminal.output(JSONWriter.pretty(.object([
                JSONMember("model", .string(model)), JSONMember("bytes", .int(r.bytes)), JSONMember("changed_bytes", .int(r.changedBytes)),
                JSONMember("bake_s", .double(r.bakeSeconds)), JSONMember("first_bake_s", .double(r.coldBakeSeconds)), JSONMember("cp_s", .double(r.copySeconds)),
                JSONMember("cp_sync_s", .double(r.copySyncSeconds)), JSONMember("ratio_to_cp", .double(r.ratioToCopy)),
                JSONMember("ratio_to_cp_sync", .double(r.ratioToCopySync)),
            ]), sortKeys: false))
        }
    }
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
