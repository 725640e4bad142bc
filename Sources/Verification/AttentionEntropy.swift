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
    public static func measure(_ model: LlamaModel, windows: [[Int]], temperatures: [[Float]?]? = nil) throws -> [[Double]] {
        guard let T = windows.first?.count else { return [] }
        let c = model.config
        var total = Array(repeating: Array(repeating: 0.0, count: c.heads), count: c.layers)
        let perBatch = max(1, 8192 / T)
        for start in stride(from: 0, to: windows.count, by: perBatch) {
            let batch = Array(windows[start..<min(windows.count, start + perBatch)])
            let out = try model.forward(ForwardRequest(tokens: batch, temperatures: temperatures, entropy: true))
            let means = meanPerHead(out.entropy, layers: c.layers, sequences: batch.count, heads: c.heads, length: T)
            for l in 0..<c.layers { for h in 0..<c.heads { total[l][h] += means[l][h] * Double(batch.count) } }
        }
        return total.map { $0.map { $0 / Double(windows.count) } }
    }

    /// The uniform ceiling at length n: log2(n) bits.
    public static func ceiling(length n: Int) -> Double { log2(Double(n)) }
}

/// What `nopekit score` reports: the loss of one sequence, and optionally its entropies.
public struct SequenceScore: Sendable {
    public var tokens: Int
    public var losses: [Float]
    public var totalLoss: Double
    public var meanLoss: Double { totalLoss / Double(max(1, losses.count)) }
    public var perplexity: Double { exp(meanLoss) }
    /// [layer][head] mean entropy in bits (empty unless asked).
    public var entropy: [[Double]]

    public static func score(_ model: LlamaModel, tokens: [Int], temperatures: [[Float]?]? = nil, entropy: Bool = false) throws -> SequenceScore {
        let c = model.config
        let out = try model.forward(ForwardRequest(tokens: [tokens], temperatures: temperatures, losses: true, entropy: entropy))
        return SequenceScore(tokens: tokens.count, losses: out.losses, totalLoss: out.losses.reduce(0.0) { $0 + Double($1) },
                             entropy: entropy ? AttentionEntropy.meanPerHead(out.entropy, layers: c.layers, sequences: 1, heads: c.heads, length: tokens.count) : [])
    }
}
