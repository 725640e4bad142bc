import Checkpoints
import DataParallel
import Engine
import Foundation

/// The three searches behind one entry point, each ending in a `TemperatureTable` that records
/// the method, every setting, the data, and the held-out loss before and after at the target
/// length and at the training length (longer reach can cost short-context quality: the table
/// shows the trade).
public enum Search {
    public enum Method: String, Sendable, CaseIterable { case headscale, uniform, entropy }

    public struct Request: Sendable {
        public var method: Method = .headscale
        public var headscale = HeadScaleSearch.Settings()
        /// HeadScale's starting value; nil starts from the uniform search's answer.
        public var initialScale: Float? = 1.6
        /// Bounds of the uniform (golden-section) and entropy (bisection) searches.
        public var low: Float = 1, high: Float = 3
        public var maxScale: Float = 4
        /// HeadScale state file (saved every few steps) and whether to continue from it.
        public var statePath: String?
        public var resume = false
        public var source = "unknown"
        public var sourceSHA256: String?
        /// How the schedule was chosen, for the table ("paper" or "fast").
        public var schedule = "paper"
        public init() {}
    }

    /// A line of progress for the terminal.
    public typealias Log = (String) -> Void

    public static func run(_ problem: SearchProblem, _ request: Request, log: Log = { _ in }) throws -> TemperatureTable {
        let started = Date()
        let c = problem.config
        let ones = problem.uniform(1)
        log("held-out loss before: measuring at \(problem.targetLength) and \(problem.trainingLength) tokens")
        let beforeTarget = try problem.heldOutLoss(ones, length: problem.targetLength)
        let beforeTraining = try problem.heldOutLoss(ones, length: problem.trainingLength)
        log(String(format: "before: loss %.4f at %d, %.4f at %d", beforeTarget, problem.targetLength, beforeTraining, problem.trainingLength))
        var settings: [JSONMember] = [
            JSONMember("granularity", .string(problem.granularity.rawValue)),
            JSONMember("layers", .array(problem.searchedLayers.map { .int($0) })),
            JSONMember("data", .string(problem.data.description)),
            JSONMember("eval_sequences", .int(problem.evalSequences)),
        ]
        let found: [Float]
        switch request.method {
        case .uniform:
            let r = try UniformSearch.run(problem, low: request.low, high: request.high) { s, l in
                log(String(format: "uniform s = %.4f: held-out loss %.4f", s, l))
            }
            found = problem.uniform(r.scale)
            settings += [JSONMember("low", .double(Double(request.low))), JSONMember("high", .double(Double(request.high))),
                         JSONMember("probes", .int(r.probes.count)), JSONMember("scale", .double(Double(r.scale)))]
        case .entropy:
            found = try EntropySearch.run(problem, minScale: request.headscale.minScale, maxScale: request.maxScale) { l, row in
                log("entropy: layer \(l) scales " + row.map { String(format: "%.3f", $0) }.joined(separator: " "))
            }
            settings += [JSONMember("min_scale", .double(Double(request.headscale.minScale))),
                         JSONMember("max_scale", .double(Double(request.maxScale))), JSONMember("experimental", .bool(true))]
        case .headscale:
            let h = request.headscale
            let search = try HeadScaleSearch(problem: problem, settings: h)
            var state: HeadScaleSearch.State
            var initDescription: JSONValue
            if request.resume, let path = request.statePath, FileManager.default.fileExists(atPath: path) {
                state = try HeadScaleSearch.load(path, settings: h, count: problem.count)
                log("resuming from \(path) at step \(state.step)")
                initDescription = request.initialScale.map { .double(Double($0)) } ?? .string("uniform")
            } else if let s0 = request.initialScale {
                state = search.initialState(problem.uniform(s0))
                initDescription = .double(Double(s0))
            } else {
                let u = try UniformSearch.run(problem, low: request.low, high: request.high) { s, l in
                    log(String(format: "init: uniform s = %.4f: held-out loss %.4f", s, l))
                }
                state = search.initialState(problem.uniform(u.scale))
                initDescription = .string(String(format: "uniform (%.4f)", u.scale))
            }
            if problem.collective.size > 1 {
                // Every rank must start from the same state, or their sequences would differ.
                let starts = try problem.collective.allGather([Float(state.step)] + state.scales)
                guard starts.allSatisfy({ $0 == starts[0] }) else {
                    throw SearchError.badSettings("the ranks start from different states: with --resume, the state file \(request.statePath ?? "") must be visible to every rank at the same path (a shared folder)")
                }
            }
            state = try search.run(from: state, statePath: request.statePath) { p in
                log(String(format: "step %d/%d  loss %.4f  lr %.4f  s mean %.3f min %.3f max %.3f  %.0f tok/s  ETA %@",
                           p.step, p.steps, p.loss, p.learningRate, p.mean, p.min, p.max, p.tokensPerSecond, Self.duration(p.secondsLeft)))
            }
            found = state.scales
            settings += [JSONMember("schedule", .string(request.schedule)), JSONMember("steps", .int(h.steps)),
                         JSONMember("batch", .int(h.batch)), JSONMember("lr", .double(h.learningRate)),
                         JSONMember("init", initDescription), JSONMember("min_scale", .double(Double(h.minScale))),
                         JSONMember("warmup_fraction", .double(h.warmupFraction)), JSONMember("final_lr_fraction", .double(0.1)),
                         JSONMember("betas", .array([.double(0.9), .double(0.95)])), JSONMember("weight_decay", .double(0)),
                         JSONMember("clip", .double(1)), JSONMember("seed", .string(String(h.seed))),
                         JSONMember("training_losses", .array(state.losses.map { .double($0) }))]
        }
        let afterTarget = try problem.heldOutLoss(found, length: problem.targetLength)
        let afterTraining = try problem.heldOutLoss(found, length: problem.trainingLength)
        log(String(format: "after: loss %.4f at %d (was %.4f), %.4f at %d (was %.4f)", afterTarget, problem.targetLength, beforeTarget,
                   afterTraining, problem.trainingLength, beforeTraining))
        settings += [
            JSONMember("loss_before", .object([JSONMember("target", .double(beforeTarget)), JSONMember("training", .double(beforeTraining))])),
            JSONMember("loss_after", .object([JSONMember("target", .double(afterTarget)), JSONMember("training", .double(afterTraining))])),
            JSONMember("threads", .int(problem.model.threads)),
            JSONMember("seconds", .double(Date().timeIntervalSince(started))),
        ]
        return TemperatureTable(method: request.method.rawValue, architecture: c.modelType, layers: c.layers, heads: c.heads,
                                headDim: c.headDim, source: request.source, sourceSHA256: request.sourceSHA256,
                                trainingLength: problem.trainingLength, targetLength: problem.targetLength,
                                scales: problem.tableRows(found), search: .object(settings))
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%dh%02dm", s / 3600, s % 3600 / 60) : String(format: "%dm%02ds", s / 60, s % 60)
    }
}
