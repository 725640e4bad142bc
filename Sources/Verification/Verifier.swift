import Checkpoints
import DataParallel
import Engine
import Foundation
import Tokenizers

/// What a verification run measures, and how much of it.
public struct VerificationPlan: Sendable {
    public var lengths: [Int]
    /// Marked in the report (the length the model was trained at).
    public var trainingLength: Int?
    public var protocols: [PerplexityProtocol] = PerplexityProtocol.allCases
    public var stride = 256
    /// Scored tokens per length and protocol (whole windows: the last may overshoot).
    public var maxTokens = 16384
    /// nil: no passkey grid.
    public var passkey: PasskeyGrid?
    /// Windows per length for the entropy (nil: no entropy).
    public var entropyWindows: Int? = 4

    public init(lengths: [Int], trainingLength: Int? = nil) {
        self.lengths = lengths
        self.trainingLength = trainingLength
    }
}

/// A model as one column of the report: a checkpoint, perhaps with temperatures at run time.
public struct Subject {
    public var label: String
    public var source: String
    public var model: LlamaModel
    public var temperatures: [[Float]?]?

    public init(label: String, source: String, model: LlamaModel, temperatures: [[Float]?]? = nil) {
        self.label = label; self.source = source; self.model = model; self.temperatures = temperatures
    }
}

/// Everything measured on one subject.
public struct Measurements: Sendable {
    public var label: String
    public var source: String
    public var perplexity: [PerplexityResult] = []
    public var passkey: PasskeyAccuracy?
    public var passkeyOutcomes: [PasskeyOutcome] = []
    /// Per length: [layer][head] mean entropy (bits).
    public var entropy: [(length: Int, bits: [[Double]])] = []
    public var seconds = 0.0

    public func perplexity(_ method: PerplexityProtocol, length: Int) -> PerplexityResult? {
        perplexity.first { $0.method == method && $0.length == length }
    }

    public func entropy(length: Int) -> [[Double]]? { entropy.first { $0.length == length }?.bits }
}

/// Runs a plan on subjects: perplexity per length and protocol, the passkey grid by greedy
/// decoding, per-head entropy. Every subject sees the same windows and the same prompts.
public struct Verifier {
    public let plan: VerificationPlan
    public let stream: [Int]
    public let bos: Int?
    public let prompts: [PasskeyPrompt]
    /// The job's ranks (`mpirun -np N nopekit verify`): every measurement deals its windows or
    /// prompts out across them; the result is the same as one process's.
    public var collective: any Collective = SingleProcess()

    /// `stream`: the evaluation tokens (no special tokens). The passkey prompts are built once
    /// with `tokenizer` and `template` when the plan has a grid.
    public init(plan: VerificationPlan, stream: [Int], bos: Int?, tokenizer: Tokenizer?, template: PasskeyTemplate) throws {
        self.plan = plan
        self.stream = stream
        self.bos = bos
        if let grid = plan.passkey {
            guard let tokenizer else { throw VerificationError.unsupported("the passkey grid needs the model's tokenizer; this model has none (drop --passkey)") }
            prompts = try grid.prompts(template, tokenizer: tokenizer)
        } else {
            prompts = []
        }
        let longest = plan.lengths.max() ?? 0
        guard stream.count >= longest + 1 else { throw VerificationError.notEnoughData(needed: longest + 1, have: stream.count) }
    }

    /// Measures `subject`; `progress` gets a short line per step. Stops between steps once
    /// Ctrl-C was pressed while an output is being assembled (`Interruption`).
    public func measure(_ subject: Subject, progress: (String) -> Void = { _ in }) throws -> Measurements {
        let start = Date()
        func step(_ line: String) throws {
            try Interruption.check(subject.source)
            progress(line)
        }
        var m = Measurements(label: subject.label, source: subject.source)
        var perplexity = Perplexity(model: subject.model, temperatures: subject.temperatures)
        perplexity.batchTokens = 8192
        perplexity.collective = collective
        for length in plan.lengths {
            for method in plan.protocols {
                try step("\(subject.label): perplexity at \(length) (\(method.rawValue))")
                m.perplexity.append(try perplexity.measure(method, stream: stream, length: length, stride: plan.stride, bos: bos,
                                                           maxTokens: plan.maxTokens))
            }
            if let count = plan.entropyWindows {
                try step("\(subject.label): entropy at \(length)")
                let windows = Array(Perplexity.windows(.chunks, stream: stream, length: length, bos: bos).windows.prefix(count))
                m.entropy.append((length, try AttentionEntropy.measure(subject.model, windows: windows, temperatures: subject.temperatures, collective: collective)))
            }
        }
        if let grid = plan.passkey {
            try step("\(subject.label): passkey, \(prompts.count) prompts")
            m.passkeyOutcomes = try PasskeyRun(model: subject.model, temperatures: subject.temperatures).run(prompts, collective: collective) { _ in
                try Interruption.check(subject.source)
            }
            m.passkey = PasskeyAccuracy(m.passkeyOutcomes, lengths: grid.lengths)
        }
        m.seconds = Date().timeIntervalSince(start)
        return m
    }
}
