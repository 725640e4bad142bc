import DataParallel
import Engine
import Foundation

/// Perplexity of a model on a token stream at one context length, by one of the two protocols
/// users compare against.
///
/// - `sliding` (the HeadScale paper's `run_ppl.py`, after Position Interpolation): windows of
///   `length` tokens ending at `length`, `length + stride`, …; each window scores only its last
///   `stride` tokens, so every scored token sees at least `length − stride` tokens of context.
///   Nothing is prepended: windows start mid-text.
/// - `chunks` (llama.cpp's `llama-perplexity`): non-overlapping chunks of `length` tokens whose
///   first token is replaced by BOS; only the second half of each chunk is scored (the logits
///   at positions length/2 … length−2).
///
/// The result is exp(mean NLL) over every scored token, with llama.cpp's standard error
/// ppl · sqrt((E[nll²] − E[nll]²) / (n − 1)).
public enum PerplexityProtocol: String, CaseIterable, Sendable {
    case sliding, chunks
}

public struct PerplexityResult: Equatable, Sendable {
    public var method: PerplexityProtocol
    public var length: Int
    public var windows: Int
    /// Tokens scored.
    public var tokens: Int
    /// Mean negative log-likelihood in nats.
    public var meanLoss: Double
    public var perplexity: Double { exp(meanLoss) }
    public var standardError: Double
}

/// Running sums of per-token losses.
struct LossTally {
    var count = 0, sum = 0.0, sumOfSquares = 0.0

    mutating func add(_ losses: ArraySlice<Float>) {
        for l in losses { let d = Double(l); sum += d; sumOfSquares += d * d }
        count += losses.count
    }

    var mean: Double { sum / Double(max(1, count)) }

    /// Standard error of exp(mean) by the delta method (llama.cpp's `ppl ± …`).
    var perplexityStandardError: Double {
        guard count > 1 else { return .nan }
        let variance = max(0, sumOfSquares / Double(count) - mean * mean)
        return exp(mean) * (variance / Double(count - 1)).squareRoot()
    }
}

public struct Perplexity {
    public let model: LlamaModel
    public var temperatures: [[Float]?]?
    /// Windows run together in one forward (all of the same length).
    public var batchTokens = 8192
    /// The job's ranks: batches are dealt out across them (`mpirun -np N nopekit verify`).
    public var collective: any Collective = SingleProcess()

    public init(model: LlamaModel, temperatures: [[Float]?]? = nil) {
        self.model = model
        self.temperatures = temperatures
    }

    /// The windows a protocol takes from `stream`, and the positions (indices into the
    /// forward's per-token losses, where loss t predicts token t+1) each one scores.
    public static func windows(_ method: PerplexityProtocol, stream: [Int], length L: Int, stride S: Int = 256,
                               bos: Int?) -> (windows: [[Int]], scored: Range<Int>) {
        switch method {
        case .sliding:
            let S = min(S, L - 1)
            let windows = Swift.stride(from: L, through: stream.count, by: S).map { Array(stream[($0 - L)..<$0]) }
            return (windows, (L - S - 1)..<(L - 1))
        case .chunks:
            let windows = (0..<(stream.count / L)).map { c -> [Int] in
                var w = Array(stream[(c * L)..<((c + 1) * L)])
                if let bos { w[0] = bos }
                return w
            }
            return (windows, (L / 2)..<(L - 1))
        }
    }

    /// Perplexity at `length`; stops before the next window once `maxTokens` are scored.
    public func measure(_ method: PerplexityProtocol, stream: [Int], length: Int, stride: Int = 256, bos: Int?,
                        maxTokens: Int = .max, progress: (Int) -> Void = { _ in }) throws -> PerplexityResult {
        let (windows, scored) = Self.windows(method, stream: stream, length: length, stride: stride, bos: bos)
        guard !windows.isEmpty else { throw VerificationError.notEnoughData(needed: length + 1, have: stream.count) }
        // Whole windows only, as many as the budget needs, in batches of `perBatch`: planned up
        // front, so the ranks of a data-parallel job run exactly the batches one process would.
        let perBatch = max(1, batchTokens / length)
        let budget = maxTokens <= 0 ? 0 : maxTokens / scored.count + (maxTokens % scored.count == 0 ? 0 : 1)
        let used = min(windows.count, budget)
        let batches = Swift.stride(from: 0, to: used, by: perBatch).map { $0..<min(used, $0 + perBatch) }
        let scoredLosses = try collective.map(batches.count) { b in
            let batch = Array(windows[batches[b]])
            let losses = try model.forward(ForwardRequest(tokens: batch, temperatures: temperatures, losses: true)).losses
            return batch.indices.flatMap { w in losses[(w * (length - 1) + scored.lowerBound)..<(w * (length - 1) + scored.upperBound)] }
        }
        var tally = LossTally()
        for losses in scoredLosses {
            tally.add(losses[...])
            progress(tally.count)
        }
        return PerplexityResult(method: method, length: length, windows: used, tokens: tally.count, meanLoss: tally.mean,
                                standardError: tally.perplexityStandardError)
    }
}
