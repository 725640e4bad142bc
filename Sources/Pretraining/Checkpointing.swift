import Checkpoints
import Engine
import Foundation

extension Trainer {
    public var parameterCount: Int { parameters.tensorList.reduce(0) { $0 + $1.shape.reduce(1, *) } }

    /// Saves OUT/checkpoint (everything `--resume` needs), then the model folder, the training
    /// log and the card.
    ///
    /// The checkpoint is one folder (weights, both optimiser moments, step and RNG, log),
    /// written whole under a temporary name and swapped in by one atomic exchange: a process
    /// killed at any moment leaves the previous checkpoint or the new one, never weights of one
    /// step with moments of another (which `--resume` would then continue from, silently
    /// off the uninterrupted run). The files beside it are each replaced atomically.
    public func save() throws {
        let folder = options.output
        let template = options.corpus.template
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let state = optimizerState
        let checkpoint = try AtomicOutput(finalPath: folder + "/checkpoint", kind: .directory, replacing: true)
        try ModelFolder.save(parameters, to: checkpoint.temporaryChild("parameters"), passkeyTemplate: template)
        try ModelFolder.save(state.m, to: checkpoint.temporaryChild("m"), passkeyTemplate: template)
        try ModelFolder.save(state.v, to: checkpoint.temporaryChild("v"), passkeyTemplate: template)
        try ModelFolder.replaceText(checkpoint.temporaryChild("state.json"), "{\"step\": \(state.step), \"rng\": \"\(rngState)\"}\n")
        try ModelFolder.replaceText(checkpoint.temporaryChild("training_log.jsonl"), logText)
        try checkpoint.commit()
        try ModelFolder.save(parameters, to: folder, metadata: ["nopekit.tool": "nopekit pretrain"], passkeyTemplate: template)
        try ModelFolder.replaceText(folder + "/training_log.jsonl", logText)
        try ModelFolder.replaceText(folder + "/TRAINING.md", card)
    }

    /// The training log as JSON lines.
    var logText: String {
        log.map { e in
            var s = "{\"step\": \(e.step), \"loss\": \(e.loss), \"lr\": \(e.learningRate), \"grad_norm\": \(e.gradientNorm), \"seconds\": \(e.seconds)"
            if let h = e.heldOutLoss { s += ", \"held_out_loss\": \(h)" }
            if let p = e.passkeyAccuracy { s += ", \"passkey\": \(p)" }
            return s + "}"
        }.joined(separator: "\n") + "\n"
    }

    /// Restores weights, optimiser moments, step, RNG and log from OUT/checkpoint.
    public func resume() throws {
        let checkpoint = options.output + "/checkpoint"
        let store = try ShardedSafetensors(folder: checkpoint + "/parameters")
        setParameters(try Parameters(store: store, config: config))
        let m = try Parameters(store: try ShardedSafetensors(folder: checkpoint + "/m"), config: config)
        let v = try Parameters(store: try ShardedSafetensors(folder: checkpoint + "/v"), config: config)
        let state = try JSONReader.parse(try SmallFile.read(checkpoint + "/state.json"))
        guard let step = state["step"]?.intValue, let rngText = state["rng"]?.stringValue, let rng = UInt64(rngText) else {
            throw FileError.cannotOpen(path: checkpoint + "/state.json", reason: "no step/rng")
        }
        restore(step: step, m: m, v: v, rng: rng)
        if let text = try? String(contentsOfFile: checkpoint + "/training_log.jsonl", encoding: .utf8) {
            restoreLog(text)
        }
    }

    /// The training card: command, seed, data, time and the loss curve.
    var card: String {
        var lines = ["# nopekit model organism", "",
                     "Trained from scratch by `\(options.command)`.", "",
                     "| setting | value |", "|---|---|",
                     "| parameters | \(parameterCount) |",
                     "| layers × width | \(config.layers) × \(config.hidden), \(config.heads) heads of \(config.headDim), \(config.kvHeads) KV heads, MLP \(config.intermediate) |",
                     "| positions | \(PositionSpec.describe(config.positions)) |",
                     "| sliding window | \(options.slidingWindow.map { "\($0) keys on the RoPE layers" } ?? "none (every layer global)") |",
                     "| vocabulary | bytes + BOS/EOS (\(config.vocab)) |",
                     "| training length | \(options.length) |",
                     "| batch | \(options.batch) sequences |",
                     "| optimiser | AdamW lr \(options.optimizer.learningRate), betas (\(options.optimizer.beta1), \(options.optimizer.beta2)), wd \(options.optimizer.weightDecay), clip \(options.optimizer.clipNorm), warmup \(options.optimizer.warmupSteps), cosine to \(options.optimizer.minimumFraction) |",
                     "| seed | \(options.seed) |",
                     "| data | `nopekit corpus` grammar prose + passkey documents (≤ \(options.length) bytes; held-out ≤ \(options.length * 2)), \(options.corpusBytes) bytes |",
                     "| sequences | \(options.corpus == .mixed ? "windows of the packed corpus" : "a passkey document first (short task line), then packed corpus") (`--corpus \(options.corpus.rawValue)`) |",
                     "| steps done | \(log.last?.step ?? 0) of \(options.steps) |",
                     String(format: "| training time | %.0f s |", log.last?.seconds ?? 0), "",
                     "## Loss curve", "", "| step | train loss | held-out loss | passkey |", "|---|---|---|---|"]
        for e in log where e.heldOutLoss != nil {
            lines.append(String(format: "| %d | %.4f | %.4f | %@ |", e.step, e.loss, e.heldOutLoss!,
                                e.passkeyAccuracy.map { String(format: "%.0f%%", 100 * $0) } ?? "–"))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
