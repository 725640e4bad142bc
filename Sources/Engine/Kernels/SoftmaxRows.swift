/// The per-row loops of the tiled attention, forward and backward, sixteen lanes at a time.
///
/// Between its sgemm calls the tiled attention walks each row of a score tile: find the row's
/// maximum, exponentiate, sum (and, for the entropy, sum e·d); in the backward, rebuild P from
/// the saved log-sum-exp and form dS. Written as plain scalar loops these do not vectorise
/// (a Float reduction must keep its order, and `exp` is a call), and at T = 256 they took 18 %
/// of a training step. Each fast routine here has its scalar twin beside it (`…Naive`), which
/// the tests compare it with; both use the same Cephes polynomial, so they differ only in the
/// order of the sums.
public enum SoftmaxRows {
    typealias Lanes = SIMD16<Float>

    // MARK: row maximum

    /// max(start, row[0..<count]).
    public static func maximum(_ row: UnsafePointer<Float>, count: Int, start: Float) -> Float {
        var c = 0
        var best = Lanes(repeating: start)
        while c + 16 <= count {
            let v = Vector16.load(row + c)
            best.replace(with: v, where: v .> best)  // (the stdlib's pointwiseMax runs lane by lane)
            c += 16
        }
        var m = best.max()
        while c < count { m = max(m, row[c]); c += 1 }
        return m
    }

    public static func maximumNaive(_ row: UnsafePointer<Float>, count: Int, start: Float) -> Float {
        var m = start
        for c in 0..<count where row[c] > m { m = row[c] }
        return m
    }

    // MARK: forward: exponentiate a row and sum it

    /// row[c] ← e^(row[c] − m) for c < count; returns Σ e and Σ e·(row[c] − m) (the entropy's U).
    public static func exponentiate(_ row: UnsafeMutablePointer<Float>, count: Int, minus m: Float) -> (sum: Float, u: Float) {
        var c = 0
        var sum = Lanes(), u = Lanes()
        let mm = Lanes(repeating: m)
        while c + 16 <= count {
            let d = Vector16.load(row + c) - mm
            let e = FastMath.exp(d)
            Vector16.store(e, row + c)
            sum += e
            u += e * d
            c += 16
        }
        var s = sum.sum(), uu = u.sum()
        while c < count {
            let d = row[c] - m, e = FastMath.exp(d)
            row[c] = e; s += e; uu += e * d
            c += 1
        }
        return (s, uu)
    }

    public static func exponentiateNaive(_ row: UnsafeMutablePointer<Float>, count: Int, minus m: Float) -> (sum: Float, u: Float) {
        var sum: Float = 0, u: Float = 0
        for c in 0..<count {
            let d = row[c] - m
            let e = FastMath.exp(d)
            row[c] = e
            sum += e
            u += e * d
        }
        return (sum, u)
    }

    // MARK: backward: P and dS of a row

    /// For c < count, with s = row of λ-scaled scores, dp = row of dO·Vᵀ, m the row's log-sum-exp
    /// and rowDot = dO_i·O_i:  p = e^(s − m), ds = p·(dp − rowDot); writes s ← p, dp ← ds and
    /// returns Σ ds·s (the temperature's gradient, times λ).
    public static func backward(scores s: UnsafeMutablePointer<Float>, dP dp: UnsafeMutablePointer<Float>, count: Int,
                                logSumExp m: Float, rowDot: Float) -> Float {
        var c = 0
        var acc = Lanes()
        let mm = Lanes(repeating: m), dot = Lanes(repeating: rowDot)
        while c + 16 <= count {
            let sv = Vector16.load(s + c)
            let p = FastMath.exp(sv - mm)
            let ds = p * (Vector16.load(dp + c) - dot)
            acc += ds * sv
            Vector16.store(p, s + c)
            Vector16.store(ds, dp + c)
            c += 16
        }
        var total = acc.sum()
        while c < count {
            let p = FastMath.exp(s[c] - m), ds = p * (dp[c] - rowDot)
            total += ds * s[c]
            s[c] = p; dp[c] = ds
            c += 1
        }
        return total
    }

    public static func backwardNaive(scores s: UnsafeMutablePointer<Float>, dP dp: UnsafeMutablePointer<Float>, count: Int,
                                     logSumExp m: Float, rowDot: Float) -> Float {
        var total: Float = 0
        for c in 0..<count {
            let p = FastMath.exp(s[c] - m)
            let ds = p * (dp[c] - rowDot)
            total += ds * s[c]
            s[c] = p
            dp[c] = ds
        }
        return total
    }
}
