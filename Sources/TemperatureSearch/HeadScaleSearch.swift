import Checkpoints
import DataParallel
import Engine
import Foundation

/// HeadScale (Wang et al., ACL Findings 2024): one multiplier s_h per query head of the
/// searched layers, trained by gradient descent on the language-model loss at the target
/// length with every weight frozen.
///
/// The paper's recipe is the default: AdamW β (0.9, 0.95) without weight decay, lr 0.1, cosine
/// schedule with 10 % linear warmup down to 10 % of the peak, 200 steps of 8 sequences
/// (accumulated one sequence at a time), gradient-norm clip 1, and the focus constraint
/// s_h ≥ min-scale after every step.
public final class HeadScaleSearch {
    public struct Settings: Sendable, Equatable {
        public var learningRate = 0.1
        public var steps = 200
        public var batch = 8
        public var minScale: Float = 1
        public var seed: UInt64 = 314
        public var warmupFraction = 0.1
        /// Saved state every this many steps (when a state path is given).
        public var checkpointEvery = 10
        public init() {}

        /// The paper's schedule (run_hs.sh): 200 steps × 8 sequences, lr 0.1.
        public static let paper = Settings()

        /// 16× cheaper, within 1 % of the paper schedule's held-out loss on the bundled organism
        /// (docs/benchmarks.md): 50 steps × 2 sequences, lr 0.2.
        public static let fast: Settings = {
            var s = Settings()
            (s.steps, s.batch, s.learningRate) = (50, 2, 0.2)
            return s
        }()

        var optimizer: AdamW.Settings {
            var o = AdamW.Settings()
            o.learningRate = learningRate
            o.beta1 = 0.9; o.beta2 = 0.95; o.weightDecay = 0; o.clipNorm = 1
            o.warmupSteps = Int((Double(steps) * warmupFraction).rounded())
            o.totalSteps = steps
            o.minimumFraction = 0.1
            return o
        }
    }

    /// Everything needed to continue a search exactly where it stopped.
    public struct State: Equatable {
        public var step = 0
        public var scales: [Float]
        public var m: [Float]
        public var v: [Float]
        public var rng: SearchRandom
        /// (step, mean training loss of the step)
        public var losses: [Double] = []
    }

    public struct Progress: Sendable {
        public var step: Int, steps: Int
        public var loss: Double, learningRate: Double
        public var mean: Float, min: Float, max: Float
        public var tokensPerSecond: Double, secondsLeft: Double
    }

    public let problem: SearchProblem
    public let settings: Settings

    public init(problem: SearchProblem, settings: Settings) throws {
        guard settings.steps >= 1, settings.batch >= 1, settings.learningRate > 0, settings.minScale > 0 else {
            throw SearchError.badSettings("steps and batch must be ≥ 1, lr and min-scale > 0")
        }
        self.problem = problem
        self.settings = settings
    }

    public func initialState(_ initial: [Float]) -> State {
        let zeros = [Float](repeating: 0, count: initial.count)
        return State(scales: initial.map { max($0, settings.minScale) }, m: zeros, v: zeros, rng: SearchRandom(seed: settings.seed))
    }

    /// Runs from `state` to the last step; saves the state to `statePath` every
    /// `checkpointEvery` steps and at the end.
    public func run(from start: State, statePath: String? = nil, progress: (Progress) -> Void = { _ in }) throws -> State {
        try runSteps(from: start, count: settings.steps - start.step, statePath: statePath, progress: progress)
    }

    /// Runs `count` steps (at most to the last one).
    public func runSteps(from start: State, count: Int, statePath: String? = nil, progress: (Progress) -> Void = { _ in }) throws -> State {
        var state = start
        let last = min(settings.steps, start.step + count)
        let o = settings.optimizer
        let began = Date()
        let firstStep = state.step
        while state.step < last {
            // gradient of the mean loss over `batch` sequences, one sequence at a time; every rank
            // draws the same sequences, computes its share, and sums all of them in sequence
            // order, so the step is the same bits whatever the number of ranks
            var sequences: [[Int]] = []
            for _ in 0..<settings.batch { sequences.append(try problem.data.trainingWindow(length: problem.targetLength, &state.rng)) }
            let scales = state.scales
            let results = try problem.collective.map(sequences.count) { i in
                let r = try problem.lossAndGradient(scales, sequence: sequences[i])
                return [r.loss] + r.gradient
            }
            var gradient = [Float](repeating: 0, count: problem.count)
            var loss = 0.0
            for r in results {
                loss += Double(r[0]) / Double(settings.batch)
                for i in gradient.indices { gradient[i] += r[i + 1] / Float(settings.batch) }
            }
            state.step += 1
            let lr = AdamW.learningRate(step: state.step, o)
            let norm = gradient.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            AdamW.updateElements(&state.scales, gradient, &state.m, &state.v, clip: AdamW.clipFactor(norm: norm, o),
                                 learningRate: lr, decay: 0, step: state.step, o)
            for i in state.scales.indices { state.scales[i] = max(state.scales[i], settings.minScale) }  // focus constraint
            state.losses.append(loss)
            if let statePath, problem.collective.isLeader, state.step % settings.checkpointEvery == 0 || state.step == last {
                try Self.save(state, settings: settings, to: statePath)
            }
            let elapsed = Date().timeIntervalSince(began), done = state.step - firstStep
            let tokens = Double(done * settings.batch * problem.targetLength)
            progress(Progress(step: state.step, steps: settings.steps, loss: loss, learningRate: lr,
                              mean: state.scales.reduce(0, +) / Float(state.scales.count),
                              min: state.scales.min() ?? 0, max: state.scales.max() ?? 0,
                              tokensPerSecond: tokens / max(elapsed, 1e-9),
                              secondsLeft: elapsed / Double(done) * Double(settings.steps - state.step)))
        }
        return state
    }

    // MARK: - state file

    /// Floats are stored as their bit patterns, so a resumed search continues bit for bit.
    public static func save(_ s: State, settings: Settings, to path: String) throws {
        func bits(_ a: [Float]) -> JSONValue { .array(a.map { .int(Int($0.bitPattern)) }) }
        let json = JSONValue.object([
            JSONMember("format", .string("nopekit.search-state/1")),
            JSONMember("step", .int(s.step)), JSONMember("steps", .int(settings.steps)),
            JSONMember("batch", .int(settings.batch)), JSONMember("seed", .string(String(settings.seed))),
            JSONMember("rng", .string(String(s.rng.state))),
            JSONMember("scales_bits", bits(s.scales)), JSONMember("m_bits", bits(s.m)), JSONMember("v_bits", bits(s.v)),
            JSONMember("losses", .array(s.losses.map { .double($0) })),
        ])
        try AtomicOutput.write(Array((JSONWriter.pretty(json, sortKeys: false) + "\n").utf8), to: path, replacing: true)
    }

    /// Loads a state saved by the same settings (steps, batch, seed) for `count` scales.
    public static func load(_ path: String, settings: Settings, count: Int) throws -> State {
        func bad(_ d: String) -> SearchError { .badState(file: path, detail: d) }
        guard let data = try? SmallFile.read(path) else { throw bad("no state file") }
        let json: JSONValue
        do { json = try JSONReader.parse(data) } catch { throw bad("not JSON: \(error)") }
        guard json["format"]?.stringValue == "nopekit.search-state/1" else { throw bad("not a search state") }
        guard json["steps"]?.intValue == settings.steps, json["batch"]?.intValue == settings.batch,
              json["seed"]?.stringValue == String(settings.seed) else {
            throw bad("it was saved with other --steps/--batch/--seed; run with the same settings or without --resume")
        }
        func floats(_ key: String) throws -> [Float] {
            guard let a = json[key]?.arrayValue, a.count == count else { throw bad("\(key) must hold \(count) values") }
            return try a.map { v in
                guard let i = v.intValue, let b = UInt32(exactly: i) else { throw bad("\(key) holds a non-float") }
                return Float(bitPattern: b)
            }
        }
        guard let step = json["step"]?.intValue, step >= 0, step <= settings.steps,
              let rng = json["rng"]?.stringValue.flatMap({ UInt64($0) }) else { throw bad("no step or rng") }
        let losses = json["losses"]?.arrayValue?.compactMap(\.doubleValue) ?? []
        return State(step: step, scales: try floats("scales_bits"), m: try floats("m_bits"), v: try floats("v_bits"),
                     rng: SearchRandom(seed: rng), losses: losses)
    }
}
