import COpenBLAS
import Foundation

extension Attention {
    /// The backward of `tiled` for one sequence, recomputing probability tiles from the saved
    /// log-sum-exp instead of storing the T×T matrix:
    ///
    ///     P = exp(S − lse),  dV += Pᵀ·dO,  dP = dO·Vᵀ,  dS = P ∘ (dP − rowsum(dO ∘ O)),
    ///     dQ += α·dS·K,  dK += α·dSᵀ·Q,  dλ_h += Σ dS ∘ S / λ_h      (S = α·Q·Kᵀ, α = λ_h/√E)
    ///
    /// Shapes as `tiled`: q, out, dOut and dq are [T, H, E]; k, v, dk and dv are [T, G, E];
    /// logSumExp is [H, T]; dLambda is [H]. Every output accumulates (the caller zeroes it).
    /// Key/value heads are shared among H/G query heads, so the work is split by key/value head:
    /// each worker owns its heads' rows of dk, dv, dq and dλ.
    public static func backward(dOut: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                                v: UnsafePointer<Float>, out: UnsafePointer<Float>, logSumExp lse: UnsafePointer<Float>,
                                dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                                dLambda: UnsafeMutablePointer<Float>, lambda: [Float], shape s: Shape, threads: Int) {
        let T = s.length, H = s.heads, G = s.kvHeads, E = s.headDim, group = H / G
        let bq = queryTile, bk = keyTile
        let inverseRootE = 1 / Float(E).squareRoot()
        let saved = BLASRuntime.threadCount
        let workers = max(1, min(threads, G))
        if workers > 1 { BLASRuntime.setThreadCount(1) }
        defer { if workers > 1 { BLASRuntime.setThreadCount(saved) } }
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var S = [Float](repeating: 0, count: bq * bk), dP = S
            var rowDot = [Float](repeating: 0, count: bq)
            S.withUnsafeMutableBufferPointer { sp in dP.withUnsafeMutableBufferPointer { pp in
                let st = sp.baseAddress!, dpt = pp.baseAddress!
                var g = worker
                while g < G {
                    let kg = k + g * E, vg = v + g * E, dkg = dk + g * E, dvg = dv + g * E
                    for h in (g * group)..<((g + 1) * group) {
                        let alpha = lambda[h] * inverseRootE
                        var lambdaGrad: Float = 0
                        var q0 = 0
                        while q0 < T {
                            let rows = min(bq, T - q0)
                            let qh = q + q0 * H * E + h * E, dh = dOut + q0 * H * E + h * E
                            for r in 0..<rows { rowDot[r] = cblas_sdot(Int32(E), dh + r * H * E, 1, out + (q0 + r) * H * E + h * E, 1) }
                            var k0 = s.firstKey(query: q0)
                            while k0 < q0 + rows {
                                let cols = min(bk, q0 + rows - k0)
                                // S = α·Q_tile·K_tileᵀ ; dP = dO_tile·V_tileᵀ        [rows, cols]
                                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(cols), Int32(E), alpha,
                                            qh, Int32(H * E), kg + k0 * G * E, Int32(G * E), 0, st, Int32(bk))
                                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(cols), Int32(E), 1,
                                            dh, Int32(H * E), vg + k0 * G * E, Int32(G * E), 0, dpt, Int32(bk))
                                for r in 0..<rows {
                                    // S → P (for dV) and dP → dS (for dQ and dK) on the visible keys; 0 elsewhere
                                    let i = q0 + r, keys = s.visible(query: i, tileStart: k0, cols: cols)
                                    let sr = st + r * bk, dr = dpt + r * bk
                                    if !keys.isEmpty {
                                        lambdaGrad += SoftmaxRows.backward(scores: sr + keys.lowerBound, dP: dr + keys.lowerBound, count: keys.count,
                                                                           logSumExp: lse[h * T + i], rowDot: rowDot[r])
                                    }
                                    sr.update(repeating: 0, count: keys.lowerBound)
                                    dr.update(repeating: 0, count: keys.lowerBound)
                                    (sr + keys.upperBound).update(repeating: 0, count: cols - keys.upperBound)
                                    (dr + keys.upperBound).update(repeating: 0, count: cols - keys.upperBound)
                                }
                                // dV += Pᵀ·dO ; dQ += α·dS·K ; dK += α·dSᵀ·Q
                                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(cols), Int32(E), Int32(rows), 1,
                                            st, Int32(bk), dh, Int32(H * E), 1, dvg + k0 * G * E, Int32(G * E))
                                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(E), Int32(cols), alpha,
                                            dpt, Int32(bk), kg + k0 * G * E, Int32(G * E), 1, dq + q0 * H * E + h * E, Int32(H * E))
                                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(cols), Int32(E), Int32(rows), alpha,
                                            dpt, Int32(bk), qh, Int32(H * E), 1, dkg + k0 * G * E, Int32(G * E))
                                k0 += cols
                            }
                            q0 += rows
                        }
                        dLambda[h] += lambdaGrad / lambda[h]
                    }
                    g += workers
                }
            } }
        }
    }
}
