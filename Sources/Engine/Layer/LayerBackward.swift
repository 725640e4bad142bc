import COpenBLAS
import Checkpoints
import Foundation

extension Layer {
    /// The backward of `forward` for layer `l`: turns dx = ∂loss/∂x_out [N, D] into ∂loss/∂x_in
    /// in place, adds ∂loss/∂λ_h to `dLambda` [H] and, with `grads`, every weight gradient.
    ///
    /// `saved` must hold the attention half of this layer's activations (the forward's, or a
    /// recomputation from `xIn`: see `Backprop`). The MLP half runs in row chunks and is
    /// recomputed from x_mid where `saved` lacks it:
    ///
    ///     MLP:   da = dx·W_down,  (dg, du) = swigluᵀ(da),  dh2 = dg·W_gate + du·W_up,
    ///            dx += rmsnormᵀ(dh2; x_mid)
    ///     attn:  datt = dx·W_o,  (dq, dk, dv) = attentionᵀ(datt),  RoPE⁻¹ on dq and dk,
    ///            q/k-normᵀ,  dh1 = dq·W_q + dk·W_k + dv·W_v,  dx += rmsnormᵀ(dh1; x_in)
    ///
    /// Weight gradients (dW = dyᵀ·x, db = Σ_rows dy) accumulate into `grads`; their buffers
    /// must be zero or hold earlier contributions.
    public static func backward(_ w: LayerWeights, layer l: Int, xIn: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                                sequences B: Int, context ctx: LayerContext, lambda: [Float],
                                dLambda: UnsafeMutablePointer<Float>, saved s: LayerActivations, grads: inout LayerWeights?) {
        let c = ctx.config, T = ctx.length, N = B * T
        let D = c.hidden, E = c.headDim, H = c.heads, G = c.kvHeads, F = c.intermediate
        let eps = Float(c.normEps)
        var gw = grads    // accumulated in place while `grads` is empty (one owner, no copy)
        grads = nil
        defer { grads = gw }

        // ---- MLP, in row chunks over all N rows ----
        let R = ctx.rowChunk
        let scratch = MLPBuffers(rows: s.keepsMLP ? 0 : R, width: F, separateOutput: true)
        let h2Scratch = FloatBuffer(s.keepsMLP ? 0 : R * D)
        let da = FloatBuffer(R * F), dg = FloatBuffer(R * F), du = FloatBuffer(R * F), dh2 = FloatBuffer(R * D)
        var n0 = 0
        while n0 < N {
            let rows = min(R, N - n0)
            let xMid = s.xMid + n0 * D, dxc = dx + n0 * D
            let m: MLPRows
            if s.keepsMLP {
                m = MLPRows(saved: s, row: n0, width: D, mlpWidth: F)
            } else {
                m = scratch.rows(h: h2Scratch.pointer)
                mlpInputs(w, xMid: xMid, rows: rows, into: m, eps: eps, width: D, mlpWidth: F)
            }
            // da [rows, F] = dx · W_down            ([rows, D]·[D, F])
            linearBackwardInput(da.pointer, dy: dxc, w.wDown, rows: rows, in: F, out: D)
            Kernels.swigluBackward(dg: dg.pointer, du: du.pointer, da: da.pointer, g: m.g, u: m.u, count: rows * F)
            // dh2 = dg · W_gate + du · W_up
            linearBackwardInput(dh2.pointer, dy: dg.pointer, w.wGate, rows: rows, in: D, out: F)
            linearBackwardInput(dh2.pointer, dy: du.pointer, w.wUp, rows: rows, in: D, out: F, accumulate: true)
            if gw != nil {
                accumulate(&gw!, \.wDown, \.bDown, dy: dxc, x: m.a, rows: rows, in: F, out: D)
                accumulate(&gw!, \.wGate, \.bGate, dy: dg.pointer, x: m.h2, rows: rows, in: D, out: F)
                accumulate(&gw!, \.wUp, \.bUp, dy: du.pointer, x: m.h2, rows: rows, in: D, out: F)
                rmsnormWeightGradient(&gw!.mlpNorm, dy: dh2.pointer, x: xMid, rstd: m.rstd2, rows: rows, width: D)
            }
            rmsnormBackward(dx: dxc, dy: dh2.pointer, x: xMid, w: w.mlpNorm, rstd: m.rstd2, rows: rows, width: D)
            n0 += rows
        }

        // ---- attention, all rows at once ----
        // datt [N, H·E] = dx · W_o
        let datt = FloatBuffer(N * H * E)
        linearBackwardInput(datt.pointer, dy: dx, w.wo, rows: N, in: H * E, out: D)
        if gw != nil { accumulate(&gw!, \.wo, \.bo, dy: dx, x: s.att, rows: N, in: H * E, out: D) }
        let dq = FloatBuffer(N * H * E), dk = FloatBuffer(N * G * E), dv = FloatBuffer(N * G * E)
        let shape = ctx.shape(layer: l)
        for b in 0..<B {
            let qo = b * T * H * E, ko = b * T * G * E
            Attention.backward(dOut: datt.pointer + qo, q: s.q + qo, k: s.k + ko, v: s.v + ko, out: s.att + qo,
                               logSumExp: s.lse + b * H * T, dq: dq.pointer + qo, dk: dk.pointer + ko, dv: dv.pointer + ko,
                               dLambda: dLambda, lambda: lambda, shape: shape, threads: ctx.threads)
            if c.positions[l] == .rope {
                // RoPE is a rotation: its backward rotates by the opposite angle.
                let negSin = ctx.sin.map { -$0 }
                ctx.rope.apply(dq.pointer + qo, rows: T, heads: H, headDim: E, start: 0, cos: ctx.cos, sin: negSin)
                ctx.rope.apply(dk.pointer + ko, rows: T, heads: G, headDim: E, start: 0, cos: ctx.cos, sin: negSin)
            }
        }
        if let qn = w.qNorm, let kn = w.kNorm {
            // through the per-head RMSNorm: dq ← rmsnormᵀ(dq; q_raw), likewise dk
            let dqRaw = FloatBuffer(N * H * E), dkRaw = FloatBuffer(N * G * E)
            rmsnormBackward(dx: dqRaw.pointer, dy: dq.pointer, x: s.qRaw, w: qn, rstd: s.qRstd, rows: N * H, width: E)
            rmsnormBackward(dx: dkRaw.pointer, dy: dk.pointer, x: s.kRaw, w: kn, rstd: s.kRstd, rows: N * G, width: E)
            if gw?.qNorm != nil, gw?.kNorm != nil {
                rmsnormWeightGradient(&gw!.qNorm!, dy: dq.pointer, x: s.qRaw, rstd: s.qRstd, rows: N * H, width: E)
                rmsnormWeightGradient(&gw!.kNorm!, dy: dk.pointer, x: s.kRaw, rstd: s.kRstd, rows: N * G, width: E)
            }
            dq.pointer.update(from: dqRaw.pointer, count: N * H * E)
            dk.pointer.update(from: dkRaw.pointer, count: N * G * E)
        }
        // dh1 = dq·W_q + dk·W_k + dv·W_v
        let dh1 = FloatBuffer(N * D)
        linearBackwardInput(dh1.pointer, dy: dq.pointer, w.wq, rows: N, in: D, out: H * E)
        linearBackwardInput(dh1.pointer, dy: dk.pointer, w.wk, rows: N, in: D, out: G * E, accumulate: true)
        linearBackwardInput(dh1.pointer, dy: dv.pointer, w.wv, rows: N, in: D, out: G * E, accumulate: true)
        if gw != nil {
            accumulate(&gw!, \.wq, \.bq, dy: dq.pointer, x: s.h1, rows: N, in: D, out: H * E)
            accumulate(&gw!, \.wk, \.bk, dy: dk.pointer, x: s.h1, rows: N, in: D, out: G * E)
            accumulate(&gw!, \.wv, \.bv, dy: dv.pointer, x: s.h1, rows: N, in: D, out: G * E)
            rmsnormWeightGradient(&gw!.attnNorm, dy: dh1.pointer, x: xIn, rstd: s.rstd1, rows: N, width: D)
        }
        rmsnormBackward(dx: dx, dy: dh1.pointer, x: xIn, w: w.attnNorm, rstd: s.rstd1, rows: N, width: D)
    }

    // MARK: - the pieces, each the backward of one forward kernel

    /// dx[rows, in] (+)= dy[rows, out] · W[out, in]         (the input gradient of y = x·Wᵀ)
    static func linearBackwardInput(_ dx: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>, _ w: [Float],
                                    rows: Int, in i: Int, out o: Int, accumulate: Bool = false) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(i), Int32(o), 1, dy, Int32(o), w, Int32(i),
                    accumulate ? 1 : 0, dx, Int32(i))
    }

    /// dW[out, in] += dyᵀ[out, rows] · x[rows, in];  db[out] += Σ_rows dy
    static func accumulate(_ g: inout LayerWeights, _ weight: WritableKeyPath<LayerWeights, [Float]>,
                           _ bias: WritableKeyPath<LayerWeights, [Float]?>, dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
                           rows: Int, in i: Int, out o: Int) {
        g[keyPath: weight].withUnsafeMutableBufferPointer { dw in
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(o), Int32(i), Int32(rows), 1, dy, Int32(o), x, Int32(i), 1,
                        dw.baseAddress!, Int32(i))
        }
        guard g[keyPath: bias] != nil else { return }
        g[keyPath: bias]!.withUnsafeMutableBufferPointer { db in
            for r in 0..<rows { cblas_saxpy(Int32(o), 1, dy + r * o, 1, db.baseAddress!, 1) }
        }
    }

    /// The RMSNorm backward to its input, y = x̂·w with x̂ = x·rstd:
    ///     dx += (w·dy − x̂ · mean(x̂ · w·dy)) · rstd
    static func rmsnormBackward(dx: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>, x: UnsafePointer<Float>, w: [Float],
                                rstd: UnsafePointer<Float>, rows: Int, width d: Int) {
        w.withUnsafeBufferPointer { wb in
            let wp = wb.baseAddress!
            for r in 0..<rows {
                let dyr = dy + r * d, xr = x + r * d, dxr = dx + r * d, inv = rstd[r]
                var dot: Float = 0
                for k in 0..<d { dot += dyr[k] * wp[k] * xr[k] }
                let mean = dot * inv / Float(d)
                for k in 0..<d { dxr[k] += (dyr[k] * wp[k] - xr[k] * inv * mean) * inv }
            }
        }
    }

    /// The RMSNorm backward to its weight: dw += Σ_rows dy · x̂
    static func rmsnormWeightGradient(_ dw: inout [Float], dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                      rstd: UnsafePointer<Float>, rows: Int, width d: Int) {
        dw.withUnsafeMutableBufferPointer { g in
            for r in 0..<rows {
                let dyr = dy + r * d, xr = x + r * d, inv = rstd[r]
                for k in 0..<d { g[k] += dyr[k] * xr[k] * inv }
            }
        }
    }
}
