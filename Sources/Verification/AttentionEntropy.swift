import DataParallel
import Engine
import Foundation

/// Per-head attention entropy: how spread each head's attention is. A head that attends to
/// everything uniformly over n keys has log2(n) bits; the NoPE failure beyond the training
/// length shows as entropies rising towards that ceiling, and the temperatures bring them back.
public enum AttentionEntropy {
    /// Mean over the B sequences and T query positions of each layer's and head's entropy, from a
    /// forward's [L, B, H, T] entropies (bits): [layer][head].
    public static func meanPerHead(_ entropy: [Float], layers L: Int, sequences B: Int, heads H: Int, length T: Int) -> [[Double]] {
        precondition(entropy.count == L * B * H * T, "entropy has \(entropy.count) values, expected \(L)·\(B)·\(H)·\(T)")
        return (0..<L).map { l in
            (0..<H).map { h in
                var sum = 0.0
                for b in 0..<B {
                    let row = ((l * B + b) * H + h) * T
                    for t in 0..<T { sum += Double(entropy[row + t]) }
                }
                return sum / Double(B * T)
            }
        }
    }

    /// [layer][head] mean entropy (bits) over `windows` (sequences of one length).
    public static func measure(_ model: LlamaModel, windows: [[Int]], temperatures: [[Float]?]? = nil,
                               collective: any Collective = SingleProcess()) throws -> [[Double]] {
        guard let T = windows.first?.count else { return [] }
        let c = model.config
        var total = Array(repeating: Array(repeating: 0.0, count: c.heads), count: c.layers)
        let perBatch = max(1, 8192 / T)
        let starts = Array(stride(from: 0, to: windows.count, by: perBatch))
        // each batch's [layer][head] means travel as Double bits, summed in batch order
        let perBatchMeans = try collective.map(starts.count) { b in
            let batch = Array(windows[starts[b]..<min(windows.count, starts[b] + perBatch)])
            let out = try model.forward(ForwardRequest(tokens: batch, temperatures: temperatures, entropy: true))
            return FloatBits.encode(meanPerHead(out.entropy, layers: c.layers, sequences: batch.count, heads: c.heads, length: T).flatMap { $0 })
        }
        for (b, bits) in perBatchMeans.enumerated() {
            let means = FloatBits.decode(bits)
            let count = Double(min(windows.count, starts[b] + perBatch) - starts[b])
            for l in 0..<c.layers { for h in 0..<c.heads { total[l][h] += means[l * c.heads + h] * count } }
        }
        return total.map { $0.map { $0 / Double(windows.count) } }
    }

    /// The uniform ceiling at length n: log2(n) bits.
    public static func ceiling(length n: Int) -> Double { log2(Double(n)) }
}

/// What `nopekit score` reports: the loss of every token of one input, and optionally the
/// entropies. An input longer than `window` is scored in overlapping windows (Hugging Face's
/// strided perplexity): windows start every window/2 tokens, and each scores only the tokens
/// the previous one did not, so every token after the first is scored once, with at least
/// window/2 tokens of context beyond the first window, in memory bounded by the window.
public struct SequenceScore: Sendable {
    public var tokens: Int
    public var losses: [Float]
    public var totalLoss: Double
    public var windows: Int
    public var meanLoss: Double { totalLoss / Double(max(1, losses.count)) }
    public var perplexity: Double { exp(meanLoss) }
    /// [layer][head] mean entropy in bits over every window (empty unless asked).
    public var entropy: [[Double]]

    /// The windows of an input of `count` tokens: each one's range and the positions (into
    /// its own per-token losses) it scores.
    static func windows(count n: Int, window w: Int) -> [(range: Range<Int>, scored: Range<Int>)] {
        guard n > w else { return [(0..<n, 0..<(n - 1))] }
        let stride = max(1, w / 2)
        var out: [(Range<Int>, Range<Int>)] = []
        var start = 0, scoredUpTo = 1          // next target not yet scored
        while scoredUpTo < n {
            let end = min(n, start + w)
            out.append((start..<end, (scoredUpTo - 1 - start)..<(end - 1 - start)))
            scoredUpTo = end
            start = min(start + stride, max(0, n - w))
        }
        return out
    }

    public static func score(_ model: LlamaModel, tokens: [Int], temperatures: [[Float]?]? = nil, entropy: Bool = false,
                             window: Int = .max, progress: (Int, Int) -> Void = { _, _ in }) throws -> SequenceScore {
        let c = model.config
        let plan = windows(count: tokens.count, window: window)
        var losses: [Float] = []
        losses.reserveCapacity(tokens.count - 1)
        var bits = Array(repeating: Array(repeating: 0.0, count: c.heads), count: c.layers)
        for (i, w) in plan.enumerated() {
            let slice = Array(tokens[w.range])
            let out = try model.forward(ForwardRequest(tokens: [slice], temperatures: temperatures, losses: true, entropy: entropy))
            losses += out.losses[w.scored]
            if entropy {
                let m = AttentionEntropy.meanPerHead(out.entropy, layers: c.layers, sequences: 1, heads: c.heads, length: slice.count)
                for l in 0..<c.layers { for h in 0..<c.heads { bits[l][h] += m[l][h] / Double(plan.count) } }
            }
            progress(i + 1, plan.count)
        }
        return SequenceScore(tokens: tokens.count, losses: losses, totalLoss: losses.reduce(0.0) { $0 + Double($1) },
                             windows: plan.count, entropy: entropy ? bits : [])
    }
}
