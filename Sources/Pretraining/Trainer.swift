import Checkpoints
import Engine
import Foundation

/// Trains a small Llama-family model from scratch on the synthetic corpus: the model organisms
/// whose length generalisation nopekit studies and repairs.
public final class Trainer {
    public struct Options: Sendable {
        public var output: String
        public var layers = 4
        public var hidden = 192
        public var heads = 6
        public var kvHeads = 2
        public var headDim = 32
        public var intermediate = 512
        public var length = 256
        public var batch = 16
        public var steps = 3000
        public var seed: UInt64 = 314
        /// Which layers are NoPE (`PositionSpec`'s text forms); the rest use RoPE.
        public var position = PositionSpec(pattern: .all(.none))
        /// A causal sliding window (keys per query, itself included) on every RoPE layer: the
        /// local-RoPE + global-NoPE hybrid of Llama 4 and Command A. Nil: every layer global.
        public var slidingWindow: Int?
        /// How training sequences are drawn and in which passkey wording (`Corpus.Style`).
        public var corpus = Corpus.Style.mixed
        public var evalEvery = 250
        public var evalSequences = 64
        public var corpusBytes = 8_000_000
        public var threads = 2
        public var optimizer = AdamW.Settings()
        public var command = ""
        public init(output: String) { self.output = output }
    }

    /// One line of the training log.
    public struct LogEntry: Sendable {
        public var step: Int
        public var loss: Double
        public var learningRate: Double
        public var gradientNorm: Double
        public var seconds: Double
        public var heldOutLoss: Double?
        public var passkeyAccuracy: Double?
    }

    public let options: Options
    public let config: ModelConfig
    public private(set) var parameters: Parameters
    let optimizer: AdamW
    let backprop: Backprop
    let train: [UInt8]
    let heldOut: [UInt8]
    var rng: Corpus.Random
    public private(set) var log: [LogEntry] = []
    /// The step training (re)started from.
    public private(set) var firstStep = 0

    public init(_ o: Options) throws {
        options = o
        let positions = try o.position.resolve(layerCount: o.layers)
        var c = ModelConfig(modelType: "llama", layers: o.layers, heads: o.heads, kvHeads: o.kvHeads, headDim: o.headDim,
                            hidden: o.hidden, intermediate: o.intermediate, vocab: ByteVocabulary.size, normEps: 1e-5,
                            tiedEmbeddings: false, attentionBias: false, mlpBias: false, qkNorm: false,
                            maxPositionEmbeddings: o.length, rope: RopeParameters(theta: 10000),
                            positions: positions,
                            positionSource: "nopekit pretrain", temperatureTuning: nil, declaredDType: "float32",
                            bosTokenID: ByteVocabulary.bos, eosTokenIDs: [ByteVocabulary.eos])
        if let window = o.slidingWindow {
            guard window >= 1, positions.contains(.rope) else { throw TrainerError.windowWithoutRoPE(window: window, position: o.position.description) }
            c.attentionWindows = positions.map { $0 == .rope ? window : nil }
        }
        config = c
        if o.corpus == .passkeyFirst {
            // The shortest document (no filler) must fit after BOS, or no sequence could be drawn.
            var r = Corpus.Random(seed: 0)
            let doc = Corpus.passkeyDocument(key: 10000, bytes: 0, depth: 0, template: o.corpus.template, &r)
            let needed = (doc.prompt + doc.answer + "\n\n").utf8.count + 1
            guard o.length >= needed else { throw TrainerError.tooShortForPasskeyFirst(length: o.length, needed: needed) }
        }
        parameters = Self.initialParameters(config, seed: o.seed)
        var settings = o.optimizer
        settings.totalSteps = o.steps
        optimizer = AdamW(like: parameters, settings: settings)
        backprop = try Backprop(config: config, threads: o.threads)
        train = Array(Corpus.generate(seed: o.seed, size: o.corpusBytes, maxDocument: o.length, template: o.corpus.template).utf8)
        heldOut = Array(Corpus.generate(seed: o.seed &+ 1_000_003, size: max(200_000, o.evalSequences * o.length * 2), maxDocument: o.length * 2,
                                        template: o.corpus.template).utf8)
        rng = Corpus.Random(seed: o.seed &+ 7)
    }

    /// N(0, 0.02) weights (residual projections scaled by 1/sqrt(2·layers), as GPT-2), unit norms.
    static func initialParameters(_ c: ModelConfig, seed: UInt64) -> Parameters {
        var r = Corpus.Random(seed: seed &+ 99)
        func normal(_ n: Int, std: Double) -> [Float] {
            (0..<n).map { _ in
                let u1 = max(1e-12, Double(r.next() >> 11) / Double(1 << 53)), u2 = Double(r.next() >> 11) / Double(1 << 53)
                return Float((-2 * Foundation.log(u1)).squareRoot() * cos(2 * .pi * u2) * std)
            }
        }
        let D = c.hidden, E = c.headDim, H = c.heads, G = c.kvHeads, F = c.intermediate, V = c.vocab
        let residual = 0.02 / (2 * Double(c.layers)).squareRoot()
        let layers = (0..<c.layers).map { _ in
            LayerWeights(attnNorm: Array(repeating: 1, count: D), wq: normal(H * E * D, std: 0.02), wk: normal(G * E * D, std: 0.02),
                         wv: normal(G * E * D, std: 0.02), wo: normal(D * H * E, std: residual), bq: nil, bk: nil, bv: nil, bo: nil,
                         qNorm: nil, kNorm: nil, mlpNorm: Array(repeating: 1, count: D), wGate: normal(F * D, std: 0.02),
                         wUp: normal(F * D, std: 0.02), wDown: normal(D * F, std: residual), bGate: nil, bUp: nil, bDown: nil)
        }
        return Parameters(config: c, embedding: normal(V * D, std: 0.02), layers: layers,
                          finalNorm: Array(repeating: 1, count: D), lmHead: normal(V * D, std: 0.02))
    }

    /// A training sequence of `length` tokens, BOS first. `.mixed`: a random window of `data`,
    /// starting at a document boundary half the time (so BOS-like starts are seen).
    /// `.passkeyFirst`: a fresh passkey document of random size that fits whole (answer and
    /// "\n\n" included), then text of `data` from a document boundary.
    func window(_ data: [UInt8], length: Int) -> [Int] {
        var head: [UInt8] = []
        if options.corpus == .passkeyFirst {
            let template = options.corpus.template
            repeat {
                let key = 10000 + rng.int(90000), bytes = length / 2 + rng.int(length / 2), depth = Double(rng.int(1001)) / 1000
                let doc = Corpus.passkeyDocument(key: key, bytes: bytes, depth: depth, template: template, &rng)
                head = Array((doc.prompt + doc.answer + "\n\n").utf8)
            } while head.count > length - 1
        }
        let rest = length - 1 - head.count
        // The draws each style's organism was trained with: .mixed from data.count − length,
        // .passkeyFirst from data.count − rest (both stay inside `data`).
        var start = rng.int(data.count - rest - (head.isEmpty ? 1 : 0))
        if options.corpus == .passkeyFirst || rng.chance(0.5) {
            while start > 0 && !(data[start - 1] == 10 && start >= 2 && data[start - 2] == 10) { start -= 1 }
        }
        return [ByteVocabulary.bos] + (head + data[start..<(start + rest)]).map(Int.init)
    }

    /// Runs the remaining steps (or stops after step `stop`); `report` is called after every
    /// step with the latest entry.
    public func run(until stop: Int? = nil, report: (LogEntry) -> Void) throws {
        let ones = Array(repeating: Array(repeating: Float(1), count: config.heads), count: config.layers)
        let start = Date()
        let last = min(options.steps, stop ?? options.steps)
        while optimizer.step < last {
            let batch = (0..<options.batch).map { _ in window(train, length: options.length) }
            let r = try backprop.lossAndGradients(parameters, tokens: batch, lambda: ones, weightGradients: true)
            let (lr, norm) = optimizer.update(&parameters, gradients: r.weights!)
            var entry = LogEntry(step: optimizer.step, loss: Double(r.loss), learningRate: lr, gradientNorm: norm,
                                 seconds: Date().timeIntervalSince(start), heldOutLoss: nil, passkeyAccuracy: nil)
            if optimizer.step % options.evalEvery == 0 || (optimizer.step == options.steps && options.evalEvery < Int.max) {
                let e = try evaluate(length: options.length)
                entry.heldOutLoss = e.loss
                entry.passkeyAccuracy = e.passkey
            }
            log.append(entry)
            report(entry)
        }
    }

    var optimizerState: (step: Int, m: Parameters, v: Parameters) { optimizer.state }
    var rngState: UInt64 { rng.state }

    func setParameters(_ p: Parameters) { parameters = p }

    func restore(step: Int, m: Parameters, v: Parameters, rng state: UInt64) {
        optimizer.restore(step: step, m: m, v: v)
        rng.state = state
        firstStep = step
    }

    func restoreLog(_ text: String) {
        for line in text.split(separator: "\n") {
            guard let j = try? JSONReader.parse(String(line)), let step = j["step"]?.intValue, step <= firstStep else { continue }
            log.append(LogEntry(step: step, loss: j["loss"]?.doubleValue ?? 0, learningRate: j["lr"]?.doubleValue ?? 0,
                                gradientNorm: j["grad_norm"]?.doubleValue ?? 0, seconds: j["seconds"]?.doubleValue ?? 0,
                                heldOutLoss: j["held_out_loss"]?.doubleValue, passkeyAccuracy: j["passkey"]?.doubleValue))
        }
    }

    /// Held-out loss and passkey accuracy (nil below the shortest passkey prompt) at `length`
    /// with the current weights (and λ).
    public func evaluate(length: Int, temperatures: [[Float]?]? = nil) throws -> (loss: Double, passkey: Double?) {
        try Evaluation(parameters: parameters, config: config, threads: options.threads)
            .run(heldOut: heldOut, length: length, sequences: options.evalSequences, template: options.corpus.template,
                 temperatures: temperatures, seed: options.seed)
    }
}

public enum TrainerError: Error, CustomStringConvertible, Equatable {
    case windowWithoutRoPE(window: Int, position: String)
    case tooShortForPasskeyFirst(length: Int, needed: Int)

    public var description: String {
        switch self {
        case .windowWithoutRoPE(let w, let p):
            return "a sliding window of \(w) keys goes on the RoPE layers, but --position \(p) has none; give a pattern with RoPE layers, e.g. --position layers:1,3 (NoPE layers 1 and 3)"
        case .tooShortForPasskeyFirst(let length, let needed):
            return "--corpus passkey-first opens every sequence with a whole passkey document, at least \(needed) tokens with BOS, but --length is \(length); give --length \(needed) or more"
        }
    }
}
