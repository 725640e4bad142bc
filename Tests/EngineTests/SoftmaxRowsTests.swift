import Testing
@testable import Engine

/// The sixteen-lane softmax row loops against their scalar twins.
@Suite struct SoftmaxRowsTests {
    /// Row lengths around the lane width, and a whole key tile.
    static let lengths = [0, 1, 15, 16, 17, 33, 200, 256]

    /// Deterministic scores in [−spread, spread] (a linear congruential generator).
    static func scores(_ n: Int, seed: UInt64, spread: Float = 12) -> [Float] {
        var state = seed &* 6_364_136_223_846_793_005 &+ 1
        return (0..<n).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * spread
        }
    }

    static func close(_ a: Float, _ b: Float, _ scale: Float) -> Bool { abs(a - b) <= 1e-5 * max(1, scale) }

    @Test func vectorExpEqualsScalarExpBitForBit() {
        var x: Float = -95
        while x < 88 {
            let lanes = SIMD16<Float>((0..<16).map { x + Float($0) * 0.0071 })
            let fast = FastMath.exp(lanes)
            for i in 0..<16 where lanes[i] < 88 {
                #expect(fast[i].bitPattern == FastMath.exp(lanes[i]).bitPattern, "x = \(lanes[i])")
            }
            x += 0.3
        }
        // A lane above 88 takes the scalar path for its whole vector.
        let big = FastMath.exp(SIMD16<Float>(repeating: 89))
        #expect(big[0] == FastMath.exp(89))
    }

    @Test(arguments: lengths)
    func maximumMatches(_ n: Int) {
        let row = Self.scores(n, seed: UInt64(n))
        for start in [-Float.infinity, 0, 5] {
            #expect(SoftmaxRows.maximum(row, count: n, start: start) == SoftmaxRows.maximumNaive(row, count: n, start: start))
        }
    }

    @Test(arguments: lengths)
    func exponentiateMatches(_ n: Int) {
        let scores = Self.scores(n, seed: UInt64(100 + n))
        let m = scores.max() ?? 0
        var fast = scores, naive = scores
        let a = SoftmaxRows.exponentiate(&fast, count: n, minus: m)
        let b = SoftmaxRows.exponentiateNaive(&naive, count: n, minus: m)
        #expect(fast == naive)  // the exponentials themselves are bit-identical
        #expect(Self.close(a.sum, b.sum, b.sum), "Σe \(a.sum) vs \(b.sum)")
        #expect(Self.close(a.u, b.u, abs(b.u)), "U \(a.u) vs \(b.u)")
    }

    @Test(arguments: lengths)
    func backwardMatches(_ n: Int) {
        let s = Self.scores(n, seed: UInt64(200 + n)), dp = Self.scores(n, seed: UInt64(300 + n), spread: 1)
        let m = (s.max() ?? 0) + 2.5  // a log-sum-exp lies above the row's maximum
        var fs = s, fd = dp, ns = s, nd = dp
        let a = SoftmaxRows.backward(scores: &fs, dP: &fd, count: n, logSumExp: m, rowDot: 0.3)
        let b = SoftmaxRows.backwardNaive(scores: &ns, dP: &nd, count: n, logSumExp: m, rowDot: 0.3)
        #expect(fs == ns && fd == nd)
        #expect(Self.close(a, b, abs(b)), "Σ ds·s \(a) vs \(b)")
    }
}
