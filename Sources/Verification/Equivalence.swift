import Checkpoints
import Engine
import Foundation

/// Does the patched checkpoint compute what the baseline computes with the temperatures applied
/// at run time? Logits of both on the same sequences, compared position by position.
public struct EquivalenceResult: Equatable, Sendable {
    public var sequences: Int
    public var positions: Int
    public var maxAbsDifference: Double
    /// max |Δlogit| / max |baseline logit|
    public var maxRelativeDifference: Double
    /// Mean KL(baseline ‖ patched) of the next-token distributions, nats.
    public var meanKL: Double
    /// Fraction of positions whose top token is the same.
    public var sameTopToken: Double
    /// The bound `maxRelativeDifference` must stay within for the stored type.
    public var tolerance: Double
    public var storedType: String
    public var passed: Bool { maxRelativeDifference <= tolerance }

    /// One line for the terminal and the report.
    public var summary: String {
        String(format: "equivalence (%@ q weights, %d positions): max |Δlogit| %.3g, relative %.3g (tolerance %.0e), mean KL %.3g nats, same top token %.1f%%: %@",
               storedType, positions, maxAbsDifference, maxRelativeDifference, tolerance, meanKL, 100 * sameTopToken,
               passed ? "equal within rounding" : "NOT EQUAL")
    }
}

public enum Equivalence {
    /// The bound on max|Δlogit|/max|logit| for a patched tensor stored as `type`: a few units of
    /// the type's rounding (the bake rounds each product once; docs/benchmarks.md measures 4e-7
    /// for F32, 7e-5 F16, 9e-4 BF16, 1e-4 Q8_0, 2e-4 Q4_K), so a wrong row or head fails by orders
    /// of magnitude while honest rounding passes.
    public static func tolerance(for type: TensorType) -> Double {
        switch type {
        case .plain(.f32), .plain(.f64): return 1e-5
        case .plain(.bf16): return 8e-3
        case .plain: return 2e-3                 // F16
        case .quantized: return 2e-3             // blocks: the edited fp16 scale fields
        }
    }

    /// The sequences the check runs on: the first `count` chunks (BOS first) of `stream`, of
    /// `length` tokens but at most 256 (logits of every position are compared).
    public static func sequences(_ stream: [Int], length: Int, bos: Int?, count: Int = 2) -> [[Int]] {
        Array(Perplexity.windows(.chunks, stream: stream, length: min(length, 256), bos: bos).windows.prefix(count))
    }

    public static func compare(patched: LlamaModel, baseline: LlamaModel, temperatures: [[Float]?]?, sequences: [[Int]],
                               storedType: TensorType) throws -> EquivalenceResult {
        guard let T = sequences.first?.count else { throw VerificationError.notEnoughData(needed: 2, have: 0) }
        let V = patched.config.vocab
        var maxAbs = 0.0, maxRef = 0.0, kl = 0.0, same = 0, positions = 0
        for seq in sequences {
            let request = ForwardRequest(tokens: [seq], logitPositions: Array(0..<T))
            let a = try patched.forward(request).logits
            var withTemps = request
            withTemps.temperatures = temperatures
            let b = try baseline.forward(withTemps).logits
            for t in 0..<T {
                let pa = a[(t * V)..<((t + 1) * V)], pb = b[(t * V)..<((t + 1) * V)]
                for (x, y) in zip(pa, pb) {
                    maxAbs = max(maxAbs, Double(abs(x - y)))
                    maxRef = max(maxRef, Double(abs(y)))
                }
                kl += klDivergence(reference: pb, other: pa)
                if greedyToken(pa) == greedyToken(pb) { same += 1 }
                positions += 1
            }
        }
        return EquivalenceResult(sequences: sequences.count, positions: positions, maxAbsDifference: maxAbs,
                                 maxRelativeDifference: maxAbs / max(maxRef, .leastNonzeroMagnitude), meanKL: kl / Double(positions),
                                 sameTopToken: Double(same) / Double(positions), tolerance: tolerance(for: storedType),
                                 storedType: storedType.description)
    }

    /// KL(p ‖ q) of two softmaxed logit rows, in Double.
    static func klDivergence(reference: ArraySlice<Float>, other: ArraySlice<Float>) -> Double {
        func logSoftmax(_ r: ArraySlice<Float>) -> [Double] {
            let m = Double(r.max()!)
            let lse = m + log(r.reduce(0.0) { $0 + exp(Double($1) - m) })
            return r.map { Double($0) - lse }
        }
        let lp = logSoftmax(reference), lq = logSoftmax(other)
        return max(0, zip(lp, lq).reduce(0.0) { $0 + exp($1.0) * ($1.0 - $1.1) })
    }
}

/// The index (from 0) of the largest logit; ties go to the lower id, as torch.argmax.
func greedyToken<C: Collection>(_ row: C) -> Int where C.Element == Float {
    var best = 0, bestValue = -Float.infinity
    for (i, v) in row.enumerated() where i == 0 || v > bestValue { (best, bestValue) = (i, v) }
    return best
}
