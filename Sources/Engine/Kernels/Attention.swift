import COpenBLAS
import Foundation

/// Causal grouped-query attention with a per-head temperature, and the per-head attention
/// entropy, for one sequence.
///
///     s_ij = λ_h · (q_i · k_j) / sqrt(E)     (j ≤ i)
///     o_i  = Σ_j softmax_j(s_ij) · v_j
///     H_i  = −Σ_j p_ij log2 p_ij
///
/// Shapes: q and out are [T, H, E], k and v are [T, G, E] (G key/value heads shared by H/G
/// query heads each), entropy is [H, T]. With a sliding window W (Mistral, SmolLM3, Cohere 2,
/// as transformers masks it) query i sees only the W keys i−W < j ≤ i. `tiled` never forms the T×T matrix: it walks query
/// tiles × key tiles with an online softmax (running max m, sum S and, for the entropy,
/// U = Σ e^(s−m)(s−m); when m moves to m′ both scale by e^(m−m′) and U gains (m−m′)·S, and
/// H = (ln S − U/S)/ln 2), with QKᵀ and PV through sgemm. `naive` forms full rows in Double.
public enum Attention {
    public struct Shape: Sendable {
        public var length: Int       // T
        public var heads: Int        // H
        public var kvHeads: Int      // G
        public var headDim: Int      // E
        /// Keys visible to a query, itself included (nil: all earlier keys).
        public var window: Int?
        public init(length: Int, heads: Int, kvHeads: Int, headDim: Int, window: Int? = nil) {
            self.length = length; self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim; self.window = window
        }

        /// The first key any of the queries from `i` on can see.
        public func firstKey(query i: Int) -> Int { window.map { max(0, i - $0 + 1) } ?? 0 }

        /// Which of the `cols` keys k0..<k0+cols query i sees, as offsets into the tile.
        @inline(__always)
        public func visible(query i: Int, tileStart k0: Int, cols: Int) -> Range<Int> {
            let hi = max(0, min(cols, i - k0 + 1))
            let lo = window.map { min(hi, max(0, i - $0 + 1 - k0)) } ?? 0
            return lo..<hi
        }
    }

    public static var queryTile = 64
    public static var keyTile = 256

    /// The tiled kernel for the query rows `rows` (default: all): `q` and `out` point at the
    /// first of those rows, `k` and `v` at row 0 (keys up to the last query row are read), and
    /// `entropy` and `logSumExp` (the log of each row's softmax denominator, for the backward)
    /// at the [H, T] blocks of the sequence. Heads × query tiles are shared among
    /// `threads` workers, each calling single-threaded sgemm on its own tiles.
    public static func tiled(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                             out: UnsafeMutablePointer<Float>, entropy: UnsafeMutablePointer<Float>?,
                             logSumExp: UnsafeMutablePointer<Float>? = nil,
                             lambda: [Float], shape s: Shape, rows queryRows: Range<Int>? = nil, threads: Int) {
        let T = s.length, H = s.heads, G = s.kvHeads, E = s.headDim
        let group = H / G
        let bq = queryTile, bk = keyTile
        let first = queryRows?.lowerBound ?? 0, count = queryRows?.count ?? T
        let qTiles = (count + bq - 1) / bq
        let jobs = H * qTiles
        let workers = max(1, min(threads, jobs))
        // Small tiles: one BLAS thread per worker (the caller's setting is restored after).
        let savedThreads = BLASRuntime.threadCount
        if workers > 1 && savedThreads != 1 { BLASRuntime.setThreadCount(1) }
        defer { if workers > 1 && savedThreads != 1 { BLASRuntime.setThreadCount(savedThreads) } }
        let inverseRootE = 1 / Float(E).squareRoot()

        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var scores = [Float](repeating: 0, count: bq * bk)
            var rowMax = [Float](repeating: 0, count: bq)
            var rowSum = [Float](repeating: 0, count: bq)
            var rowU = [Float](repeating: 0, count: bq)
            scores.withUnsafeMutableBufferPointer { S in
                var job = worker
                while job < jobs {
                    let h = job / qTiles, tile = job % qTiles
                    let g = h / group
                    let local = tile * bq, rows = min(bq, count - local)
                    let q0 = first + local  // position of the tile's first query
                    let alpha = lambda[h] * inverseRootE
                    let qh = q + local * H * E + h * E
                    let oh = out + local * H * E + h * E
                    for r in 0..<rows {
                        rowMax[r] = -.infinity; rowSum[r] = 0; rowU[r] = 0
                        (oh + r * H * E).update(repeating: 0, count: E)
                    }
                    var k0 = s.firstKey(query: q0)
                    while k0 < q0 + rows {
                        let cols = min(bk, q0 + rows - k0)
                        // S[rows, cols] = α · Q_tile · K_tileᵀ
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(cols), Int32(E),
                                    alpha, qh, Int32(H * E), k + k0 * G * E + g * E, Int32(G * E), 0, S.baseAddress!, Int32(bk))
                        for r in 0..<rows {
                            let keys = s.visible(query: q0 + r, tileStart: k0, cols: cols)
                            let row = S.baseAddress! + r * bk
                            if keys.isEmpty { row.update(repeating: 0, count: cols); continue }
                            let m = SoftmaxRows.maximum(row + keys.lowerBound, count: keys.count, start: rowMax[r])
                            let shift = rowMax[r] == -.infinity ? 0 : FastMath.exp(rowMax[r] - m)
                            let (sum, u) = SoftmaxRows.exponentiate(row + keys.lowerBound, count: keys.count, minus: m)
                            row.update(repeating: 0, count: keys.lowerBound)
                            (row + keys.upperBound).update(repeating: 0, count: cols - keys.upperBound)
                            let delta = rowMax[r] == -.infinity ? 0 : rowMax[r] - m
                            rowU[r] = shift * (rowU[r] + delta * rowSum[r]) + u
                            rowSum[r] = shift * rowSum[r] + sum
                            rowMax[r] = m
                            if shift != 1 { cblas_sscal(Int32(E), shift, oh + r * H * E, 1) }
                        }
                        // O_tile += P · V_tile
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(E), Int32(cols),
                                    1, S.baseAddress!, Int32(bk), v + k0 * G * E + g * E, Int32(G * E), 1, oh, Int32(H * E))
                        k0 += cols
                    }
                    for r in 0..<rows {
                        cblas_sscal(Int32(E), 1 / rowSum[r], oh + r * H * E, 1)
                        entropy?[h * T + q0 + r] = (log(rowSum[r]) - rowU[r] / rowSum[r]) / Float(M_LN2)
                        logSumExp?[h * T + q0 + r] = rowMax[r] + log(rowSum[r])
                    }
                    job += workers
                }
            }
        }
    }

    /// Full-row softmax in Double: the reference for `tiled`.
    public static func naive(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                             out: UnsafeMutablePointer<Float>, entropy: UnsafeMutablePointer<Float>?,
                             lambda: [Float], shape s: Shape) {
        let T = s.length, H = s.heads, G = s.kvHeads, E = s.headDim
        let group = H / G
        var p = [Double](repeating: 0, count: T)
        for h in 0..<H {
            let g = h / group
            for i in 0..<T {
                let first = s.firstKey(query: i)
                var m = -Double.infinity
                for j in first...i {
                    var dot = 0.0
                    for e in 0..<E { dot += Double(q[(i * H + h) * E + e]) * Double(k[(j * G + g) * E + e]) }
                    p[j] = Double(lambda[h]) * dot / Double(E).squareRoot()
                    m = max(m, p[j])
                }
                var sum = 0.0
                for j in first...i { p[j] = Foundation.exp(p[j] - m); sum += p[j] }
                var ent = 0.0
                for j in first...i {
                    p[j] /= sum
                    if p[j] > 0 { ent -= p[j] * log2(p[j]) }
                }
                entropy?[h * T + i] = Float(ent)
                for e in 0..<E {
                    var acc = 0.0
                    for j in first...i { acc += p[j] * Double(v[(j * G + g) * E + e]) }
                    out[(i * H + h) * E + e] = Float(acc)
                }
            }
        }
    }
}
