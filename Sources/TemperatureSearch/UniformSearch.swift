import Engine
import Foundation

/// UniformScale: one multiplier s for every searched head, chosen by golden-section search on
/// the held-out loss at the target length. Nothing is trained; each probe is a forward pass.
public enum UniformSearch {
    public struct Result: Sendable {
        public var scale: Float
        public var loss: Double
        /// Every probe: (s, held-out loss).
        public var probes: [(scale: Float, loss: Double)]
    }

    /// Minimises the loss over [low, high] to within `tolerance` (the loss is unimodal in s in
    /// practice: too flat below the optimum, too sharp above it).
    public static func run(_ problem: SearchProblem, low: Float = 1, high: Float = 3, tolerance: Float = 0.01,
                           progress: (Float, Double) -> Void = { _, _ in }) throws -> Result {
        guard low > 0, high > low, tolerance > 0 else { throw SearchError.badSettings("need 0 < low < high and tolerance > 0") }
        var probes: [(scale: Float, loss: Double)] = []
        _ = try GoldenSection.minimize(low: low, high: high, tolerance: tolerance) { s in
            let l = try problem.heldOutLoss(problem.uniform(s), length: problem.targetLength)
            probes.append((s, l))
            progress(s, l)
            return l
        }
        // the lower edge is a candidate too (the best may be the unpatched s = 1)
        let edge = try problem.heldOutLoss(problem.uniform(low), length: problem.targetLength)
        probes.append((low, edge))
        progress(low, edge)
        let best = probes.min { $0.loss < $1.loss }!
        return Result(scale: best.scale, loss: best.loss, probes: probes)
    }
}

/// Golden-section search for the minimum of a unimodal function on [low, high].
public enum GoldenSection {
    /// Returns the best probe (x, f(x)); the bracket shrinks by 0.618 per evaluation until it is
    /// narrower than `tolerance`.
    public static func minimize(low: Float, high: Float, tolerance: Float, _ f: (Float) throws -> Double) rethrows -> (x: Float, value: Double) {
        let ratio = Float((5.0.squareRoot() - 1) / 2)
        var a = low, b = high
        var c = b - ratio * (b - a), d = a + ratio * (b - a)
        var fc = try f(c), fd = try f(d)
        while b - a > tolerance {
            if fc < fd {
                b = d; d = c; fd = fc
                c = b - ratio * (b - a); fc = try f(c)
            } else {
                a = c; c = d; fc = fd
                d = a + ratio * (b - a); fd = try f(d)
            }
        }
        return fc < fd ? (c, fc) : (d, fd)
    }
}

/// Entropy matching (experimental, forward only): layer by layer, with the earlier layers
/// already patched, bisect each head's s so that its normalised attention entropy
/// (entropy / log2 of the visible keys), averaged over the last quarter of the positions at
/// the target length, equals the same quantity at the training length. Heads whose target
/// cannot be reached within [minScale, maxScale] keep 1.
///
/// Normalised, not raw, entropy: matching raw entropy drives content-only heads to the ceiling
/// (a PyTorch trial on a tiny NoPE model took perplexity at the training length from 1.6 to 18).
public enum EntropySearch {
    public static func run(_ problem: SearchProblem, minScale: Float = 1, maxScale: Float = 4, iterations: Int = 14,
                           progress: (Int, [Float]) -> Void = { _, _ in }) throws -> [Float] {
        guard problem.granularity == .head else { throw SearchError.badSettings("entropy matching is per head (--granularity head)") }
        let c = problem.config, H = c.heads
        let sequences = max(1, min(problem.evalSequences, 4))
        let reference = try normalisedEntropy(problem, scales: problem.uniform(1), length: problem.trainingLength, sequences: sequences)
        var s = problem.uniform(1)
        for (i, l) in problem.searchedLayers.enumerated() {
            // per head: entropy falls as s grows, so bisect on the sign of (entropy − target)
            var lo = [Float](repeating: minScale, count: H), hi = [Float](repeating: maxScale, count: H)
            func set(_ values: [Float]) { for h in 0..<H { s[i * H + h] = values[h] } }
            set(lo)
            let atLow = try normalisedEntropy(problem, scales: s, length: problem.targetLength, sequences: sequences)[l]
            set(hi)
            let atHigh = try normalisedEntropy(problem, scales: s, length: problem.targetLength, sequences: sequences)[l]
            let reachable = (0..<H).map { atLow[$0] >= reference[l][$0] && atHigh[$0] <= reference[l][$0] }
            for _ in 0..<iterations {
                let mid = (0..<H).map { (lo[$0] + hi[$0]) / 2 }
                set(mid)
                let e = try normalisedEntropy(problem, scales: s, length: problem.targetLength, sequences: sequences)[l]
                for h in 0..<H { if e[h] > reference[l][h] { lo[h] = mid[h] } else { hi[h] = mid[h] } }
            }
            set((0..<H).map { reachable[$0] ? (lo[$0] + hi[$0]) / 2 : 1 })
            progress(l, Array(s[(i * H)..<((i + 1) * H)]))
        }
        return s
    }

    /// [L][H]: entropy / log2(visible keys), averaged over the last quarter of the positions
    /// of `sequences` held-out windows of `length`.
    static func normalisedEntropy(_ problem: SearchProblem, scales: [Float], length T: Int, sequences: Int) throws -> [[Double]] {
        let c = problem.config, H = c.heads
        let windows = try problem.data.heldOutWindows(length: T, count: sequences)
        var sums = [[Double]](repeating: [Double](repeating: 0, count: H), count: c.layers)
        let first = max(1, T - T / 4)
        for w in windows {
            let r = try problem.model.forward(ForwardRequest(tokens: [w], temperatures: problem.scales(scales).map { Optional($0) }, entropy: true))
            for l in 0..<c.layers {
                let window = c.window(layer: l)
                for h in 0..<H {
                    var acc = 0.0
                    for t in first..<T {
                        let visible = Double(min(t + 1, window ?? Int.max))
                        acc += Double(r.entropy[(l * H + h) * T + t]) / log2(visible)
                    }
                    sums[l][h] += acc / Double(T - first)
                }
            }
        }
        return sums.map { $0.map { $0 / Double(windows.count) } }
    }
}
