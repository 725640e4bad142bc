import COpenBLAS
import Checkpoints
import Foundation

/// Loss and gradients of a Llama-family model, written llm.c style: the forward keeps what the
/// backward needs, and each `…Backward` sits beside the operation it differentiates.
///
/// Shapes: B sequences × T positions, N = B·T rows, D model width, F MLP width, H query heads,
/// G key/value heads, E head dim, V vocabulary. The loss is the mean cross-entropy of predicting
/// token t+1 at every position t < T−1 of every sequence.
///
/// Supported: embeddings (tied or not), RMSNorm, GQA attention with NoPE or RoPE per layer and a
/// per-head temperature λ, SwiGLU, residuals, LM head. Attention is tiled and recomputes its
/// probabilities from the saved row log-sum-exp, so no T×T matrix is stored. Models with biases
/// or q/k norms are refused for training (their forward runs in `LlamaModel`).
public final class Backprop {
    public let config: ModelConfig
    public let rope: Rope
    public var threads: Int

    public init(config: ModelConfig, threads: Int = 2) throws {
        guard !config.attentionBias, !config.mlpBias, !config.qkNorm else {
            throw EngineError.unsupportedModel("training models with biases or q/k norms is not implemented")
        }
        self.config = config
        rope = Rope(config: config)
        self.threads = threads
    }

    /// What the forward keeps of one layer for the backward.
    struct LayerCache {
        var xIn: [Float]       // [N, D] residual entering the layer
        var rstd1: [Float]     // [N]
        var h1: [Float]        // [N, D] rmsnorm(xIn) · w
        var q: [Float]         // [N, H·E] after RoPE
        var k: [Float], v: [Float]  // [N, G·E] (k after RoPE)
        var att: [Float]       // [N, H·E] attention output
        var lse: [Float]       // [B, H, T] log-sum-exp of each scaled score row
        var xMid: [Float]      // [N, D] residual after attention
        var rstd2: [Float]     // [N]
        var h2: [Float]        // [N, D]
        var g: [Float], u: [Float]  // [N, F] gate and up projections
        var a: [Float]         // [N, F] silu(g) · u
    }

    public struct Result {
        public var loss: Float
        /// Weight gradients (nil when not requested).
        public var weights: Parameters?
        /// d loss / d λ, [L][H].
        public var lambda: [[Float]]
    }

    /// Mean next-token loss over `tokens`, its gradient with respect to λ, and (if asked) every weight.
    public func lossAndGradients(_ p: Parameters, tokens: [[Int]], lambda: [[Float]], weightGradients: Bool) throws -> Result {
        try BLASRuntime.exclusive { try pass(p, tokens: tokens, lambda: lambda, weightGradients: weightGradients) }
    }

    func pass(_ p: Parameters, tokens: [[Int]], lambda: [[Float]], weightGradients: Bool) throws -> Result {
        BLASRuntime.setThreadCount(threads)
        let c = config
        let B = tokens.count
        guard B > 0, let T = tokens.first?.count, T >= 2, tokens.allSatisfy({ $0.count == T }) else {
            throw EngineError.badTokens("training needs sequences of equal length ≥ 2")
        }
        guard lambda.count == c.layers, lambda.allSatisfy({ $0.count == c.heads }) else {
            throw EngineError.badTemperatures("need \(c.layers) × \(c.heads) temperatures")
        }
        let D = c.hidden, E = c.headDim, H = c.heads, G = c.kvHeads, F = c.intermediate, N = B * T, V = c.vocab
        let eps = Float(c.normEps)
        let tables = rope.tables(count: T)

        // ---- forward ----
        var x = [Float](repeating: 0, count: N * D)
        for (b, seq) in tokens.enumerated() {
            for (t, id) in seq.enumerated() {
                guard id >= 0 && id < V else { throw EngineError.badTokens("token \(id) outside the vocabulary") }
                x[(b * T + t) * D..<(b * T + t + 1) * D] = p.embedding[id * D..<(id + 1) * D]
            }
        }
        var caches: [LayerCache] = []
        for l in 0..<c.layers {
            let w = p.layers[l]
            var cache = LayerCache(xIn: x, rstd1: [], h1: [], q: [], k: [], v: [], att: [], lse: [], xMid: [], rstd2: [], h2: [], g: [], u: [], a: [])
            (cache.h1, cache.rstd1) = Self.rmsnormForward(x, w.attnNorm, rows: N, width: D, eps: eps)
            cache.q = Self.linear(cache.h1, w.wq, rows: N, in: D, out: H * E)
            cache.k = Self.linear(cache.h1, w.wk, rows: N, in: D, out: G * E)
            cache.v = Self.linear(cache.h1, w.wv, rows: N, in: D, out: G * E)
            if c.positions[l] == .rope {
                for b in 0..<B {
                    cache.q.withUnsafeMutableBufferPointer { rope.apply($0.baseAddress! + b * T * H * E, rows: T, heads: H, headDim: E, start: 0, cos: tables.cos, sin: tables.sin) }
                    cache.k.withUnsafeMutableBufferPointer { rope.apply($0.baseAddress! + b * T * G * E, rows: T, heads: G, headDim: E, start: 0, cos: tables.cos, sin: tables.sin) }
                }
            }
            (cache.att, cache.lse) = attentionForward(cache.q, cache.k, cache.v, lambda: lambda[l], B: B, T: T)
            let o = Self.linear(cache.att, w.wo, rows: N, in: H * E, out: D)
            Kernels.add(&x, o, count: N * D)
            cache.xMid = x
            (cache.h2, cache.rstd2) = Self.rmsnormForward(x, w.mlpNorm, rows: N, width: D, eps: eps)
            cache.g = Self.linear(cache.h2, w.wGate, rows: N, in: D, out: F)
            cache.u = Self.linear(cache.h2, w.wUp, rows: N, in: D, out: F)
            cache.a = cache.g  // a = silu(g)·u
            cache.a.withUnsafeMutableBufferPointer { a in cache.u.withUnsafeBufferPointer { u in
                Kernels.swiglu(a.baseAddress!, u.baseAddress!, count: N * F)
            } }
            let d = Self.linear(cache.a, w.wDown, rows: N, in: F, out: D)
            Kernels.add(&x, d, count: N * D)
            caches.append(cache)
        }
        let (hf, rstdF) = Self.rmsnormForward(x, p.finalNorm, rows: N, width: D, eps: eps)

        // ---- loss and its gradient at the head, in row chunks ----
        var grads = weightGradients ? Parameters(zerosLike: p) : nil
        let head = p.lmHead ?? p.embedding
        var dHead = [Float](repeating: 0, count: weightGradients ? V * D : 0)
        var dhf = [Float](repeating: 0, count: N * D)
        let count = Float(B * (T - 1))
        var loss = 0.0
        let chunk = max(1, min(N, (32 << 20) / (4 * V)))
        var logits = [Float](repeating: 0, count: chunk * V)
        var r0 = 0
        while r0 < N {
            let rows = min(chunk, N - r0)
            hf.withUnsafeBufferPointer { Kernels.matmul(&logits, $0.baseAddress! + r0 * D, head, bias: nil, rows: rows, in: D, out: V) }
            // logits → dlogits = (softmax − onehot) / count for rows with a target, 0 otherwise
            for r in 0..<rows {
                let n = r0 + r, t = n % T, b = n / T
                let row = r * V
                guard t < T - 1 else { for j in 0..<V { logits[row + j] = 0 }; continue }
                let target = tokens[b][t + 1]
                logits.withUnsafeMutableBufferPointer { lp in
                    let l = lp.baseAddress! + row
                    let m = SoftmaxRows.maximum(l, count: V, start: -.infinity)
                    let targetLogit = Double(l[target] - m)
                    let s = Double(SoftmaxRows.exponentiate(l, count: V, minus: m).sum)
                    loss += log(s) - targetLogit
                    cblas_sscal(Int32(V), Float(1 / s) / count, l, 1)
                    l[target] -= 1 / count
                }
            }
            // dhf[r0…] = dlogits · W_head      [rows, V]·[V, D]
            dhf.withUnsafeMutableBufferPointer { out in
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(D), Int32(V), 1, logits, Int32(V), head, Int32(D), 0, out.baseAddress! + r0 * D, Int32(D))
            }
            // dW_head += dlogitsᵀ · hf          [V, rows]·[rows, D]
            if weightGradients {
                hf.withUnsafeBufferPointer { h in
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(V), Int32(D), Int32(rows), 1, logits, Int32(V), h.baseAddress! + r0 * D, Int32(D), 1, &dHead, Int32(D))
                }
            }
            r0 += rows
        }
        loss /= Double(count)

        // ---- backward ----
        var dx = [Float](repeating: 0, count: N * D)
        // Norm-weight gradients are cheap; they are computed always and kept when asked for.
        var dNorm = [Float](repeating: 0, count: D)
        Self.rmsnormBackward(dx: &dx, dw: &dNorm, dy: dhf, x: x, w: p.finalNorm, rstd: rstdF, rows: N, width: D)
        if weightGradients { grads!.finalNorm = dNorm }
        var dLambda = [[Float]](repeating: [Float](repeating: 0, count: H), count: c.layers)
        for l in stride(from: c.layers - 1, through: 0, by: -1) {
            let w = p.layers[l], cache = caches[l]
            // MLP:  x_out = x_mid + a·W_downᵀ,  a = silu(g)·u,  g = h2·W_gateᵀ,  u = h2·W_upᵀ
            let da = Self.linearBackwardInput(dx, w.wDown, rows: N, in: F, out: D)
            if weightGradients { Self.accumulateWeightGradient(&grads!.layers[l].wDown, dy: dx, x: cache.a, rows: N, in: F, out: D) }
            var dg = [Float](repeating: 0, count: N * F), du = dg
            dg.withUnsafeMutableBufferPointer { dgp in du.withUnsafeMutableBufferPointer { dup in
                da.withUnsafeBufferPointer { dap in cache.g.withUnsafeBufferPointer { gp in cache.u.withUnsafeBufferPointer { up in
                    Kernels.swigluBackward(dg: dgp.baseAddress!, du: dup.baseAddress!, da: dap.baseAddress!,
                                           g: gp.baseAddress!, u: up.baseAddress!, count: N * F)
                } } }
            } }
            var dh2 = Self.linearBackwardInput(dg, w.wGate, rows: N, in: D, out: F)
            Kernels.add(&dh2, Self.linearBackwardInput(du, w.wUp, rows: N, in: D, out: F), count: N * D)
            if weightGradients {
                Self.accumulateWeightGradient(&grads!.layers[l].wGate, dy: dg, x: cache.h2, rows: N, in: D, out: F)
                Self.accumulateWeightGradient(&grads!.layers[l].wUp, dy: du, x: cache.h2, rows: N, in: D, out: F)
            }
            dNorm = [Float](repeating: 0, count: D)
            Self.rmsnormBackward(dx: &dx, dw: &dNorm, dy: dh2, x: cache.xMid, w: w.mlpNorm, rstd: cache.rstd2, rows: N, width: D)
            if weightGradients { grads!.layers[l].mlpNorm = dNorm }
            // Attention:  x_mid = x_in + att·W_oᵀ
            let datt = Self.linearBackwardInput(dx, w.wo, rows: N, in: H * E, out: D)
            if weightGradients { Self.accumulateWeightGradient(&grads!.layers[l].wo, dy: dx, x: cache.att, rows: N, in: H * E, out: D) }
            var (dq, dk, dv) = attentionBackward(datt, cache: cache, lambda: lambda[l], dLambda: &dLambda[l], B: B, T: T)
            if c.positions[l] == .rope {
                // RoPE is a rotation: its backward rotates by the opposite angle.
                let negSin = tables.sin.map { -$0 }
                for b in 0..<B {
                    dq.withUnsafeMutableBufferPointer { rope.apply($0.baseAddress! + b * T * H * E, rows: T, heads: H, headDim: E, start: 0, cos: tables.cos, sin: negSin) }
                    dk.withUnsafeMutableBufferPointer { rope.apply($0.baseAddress! + b * T * G * E, rows: T, heads: G, headDim: E, start: 0, cos: tables.cos, sin: negSin) }
                }
            }
            var dh1 = Self.linearBackwardInput(dq, w.wq, rows: N, in: D, out: H * E)
            Kernels.add(&dh1, Self.linearBackwardInput(dk, w.wk, rows: N, in: D, out: G * E), count: N * D)
            Kernels.add(&dh1, Self.linearBackwardInput(dv, w.wv, rows: N, in: D, out: G * E), count: N * D)
            if weightGradients {
                Self.accumulateWeightGradient(&grads!.layers[l].wq, dy: dq, x: cache.h1, rows: N, in: D, out: H * E)
                Self.accumulateWeightGradient(&grads!.layers[l].wk, dy: dk, x: cache.h1, rows: N, in: D, out: G * E)
                Self.accumulateWeightGradient(&grads!.layers[l].wv, dy: dv, x: cache.h1, rows: N, in: D, out: G * E)
            }
            dNorm = [Float](repeating: 0, count: D)
            Self.rmsnormBackward(dx: &dx, dw: &dNorm, dy: dh1, x: cache.xIn, w: w.attnNorm, rstd: cache.rstd1, rows: N, width: D)
            if weightGradients { grads!.layers[l].attnNorm = dNorm }
        }
        if weightGradients {
            // embedding rows receive dx; a tied head adds its own gradient
            for (b, seq) in tokens.enumerated() {
                for (t, id) in seq.enumerated() {
                    for d in 0..<D { grads!.embedding[id * D + d] += dx[(b * T + t) * D + d] }
                }
            }
            if p.lmHead != nil { grads!.lmHead = dHead } else { Kernels.add(&grads!.embedding, dHead, count: V * D) }
        }
        return Result(loss: Float(loss), weights: grads, lambda: dLambda)
    }

    // MARK: - Layers, forward beside backward

    /// y = x / rms(x) · w, keeping 1/rms per row.
    static func rmsnormForward(_ x: [Float], _ w: [Float], rows: Int, width d: Int, eps: Float) -> ([Float], [Float]) {
        var y = [Float](repeating: 0, count: rows * d), rstd = [Float](repeating: 0, count: rows)
        Kernels.rmsnorm(&y, x, w, rows: rows, width: d, eps: eps, rstd: &rstd)
        return (y, rstd)
    }

    /// dx += (w·dy − x̂ · mean(x̂ · w·dy)) · rstd;  dw += Σ_rows dy · x̂   (x̂ = x · rstd)
    static func rmsnormBackward(dx: inout [Float], dw: inout [Float], dy: [Float], x: [Float], w: [Float],
                                rstd: [Float], rows: Int, width d: Int) {
        dx.withUnsafeMutableBufferPointer { dxp in dw.withUnsafeMutableBufferPointer { dwp in
            dy.withUnsafeBufferPointer { dyp in x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in
                for r in 0..<rows {
                    let inv = rstd[r]
                    let dyr = dyp.baseAddress! + r * d, xr = xp.baseAddress! + r * d, dxr = dxp.baseAddress! + r * d
                    var dot: Float = 0
                    for k in 0..<d { dot += dyr[k] * wp[k] * xr[k] }
                    let mean = dot * inv / Float(d)
                    for k in 0..<d {
                        let xhat = xr[k] * inv
                        dxr[k] += (dyr[k] * wp[k] - xhat * mean) * inv
                        dwp[k] += dyr[k] * xhat
                    }
                }
            } } }
        } }
    }

    /// y[rows, out] = x[rows, in] · Wᵀ
    static func linear(_ x: [Float], _ w: [Float], rows: Int, in i: Int, out o: Int) -> [Float] {
        var y = [Float](repeating: 0, count: rows * o)
        Kernels.matmul(&y, x, w, bias: nil, rows: rows, in: i, out: o)
        return y
    }

    /// dx[rows, in] = dy[rows, out] · W[out, in]
    static func linearBackwardInput(_ dy: [Float], _ w: [Float], rows: Int, in i: Int, out o: Int) -> [Float] {
        var dx = [Float](repeating: 0, count: rows * i)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(i), Int32(o), 1, dy, Int32(o), w, Int32(i), 0, &dx, Int32(i))
        return dx
    }

    /// dW[out, in] += dyᵀ[out, rows] · x[rows, in]
    static func accumulateWeightGradient(_ dw: inout [Float], dy: [Float], x: [Float], rows: Int, in i: Int, out o: Int) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(o), Int32(i), Int32(rows), 1, dy, Int32(o), x, Int32(i), 1, &dw, Int32(i))
    }

    /// Attention output and the log-sum-exp of every score row ([B, H, T]).
    func attentionForward(_ q: [Float], _ k: [Float], _ v: [Float], lambda: [Float], B: Int, T: Int) -> ([Float], [Float]) {
        let c = config, H = c.heads, G = c.kvHeads, E = c.headDim
        var out = [Float](repeating: 0, count: B * T * H * E)
        var lse = [Float](repeating: 0, count: B * H * T)
        let shape = Attention.Shape(length: T, heads: H, kvHeads: G, headDim: E)
        for b in 0..<B {
            q.withUnsafeBufferPointer { qp in k.withUnsafeBufferPointer { kp in v.withUnsafeBufferPointer { vp in
                out.withUnsafeMutableBufferPointer { op in lse.withUnsafeMutableBufferPointer { lp in
                    Attention.tiled(q: qp.baseAddress! + b * T * H * E, k: kp.baseAddress! + b * T * G * E, v: vp.baseAddress! + b * T * G * E,
                                    out: op.baseAddress! + b * T * H * E, entropy: nil, logSumExp: lp.baseAddress! + b * H * T,
                                    lambda: lambda, shape: shape, threads: threads)
                } }
            } } }
        }
        return (out, lse)
    }

    /// Backward of attention by recomputing probability tiles from the saved log-sum-exp:
    ///     P = exp(S − lse),  dV += Pᵀ·dO,  dP = dO·Vᵀ,  dS = P ∘ (dP − rowsum(dO ∘ O)),
    ///     dQ += α·dS·K,  dK += α·dSᵀ·Q,  dλ_h += Σ dS ∘ S / λ_h      (S = α·Q·Kᵀ, α = λ_h/√E)
    /// Key/value heads are shared among H/G query heads, so the work is split by key/value head.
    func attentionBackward(_ dO: [Float], cache: LayerCache, lambda: [Float], dLambda: inout [Float], B: Int, T: Int) -> ([Float], [Float], [Float]) {
        let c = config, H = c.heads, G = c.kvHeads, E = c.headDim, group = H / G
        var dq = [Float](repeating: 0, count: B * T * H * E), dk = [Float](repeating: 0, count: B * T * G * E), dv = dk
        var dl = [Float](repeating: 0, count: H)
        let bq = Attention.queryTile, bk = Attention.keyTile
        let inverseRootE = 1 / Float(E).squareRoot()
        let saved = BLASRuntime.threadCount
        let workers = max(1, min(threads, G))
        if workers > 1 { BLASRuntime.setThreadCount(1) }
        defer { if workers > 1 { BLASRuntime.setThreadCount(saved) } }
        dq.withUnsafeMutableBufferPointer { dqp in dk.withUnsafeMutableBufferPointer { dkp in dv.withUnsafeMutableBufferPointer { dvp in
            dl.withUnsafeMutableBufferPointer { dlp in
              cache.q.withUnsafeBufferPointer { qAll in cache.k.withUnsafeBufferPointer { kAll in cache.v.withUnsafeBufferPointer { vAll in
              cache.att.withUnsafeBufferPointer { oAll in dO.withUnsafeBufferPointer { dAll in cache.lse.withUnsafeBufferPointer { lAll in
                let dqBase = dqp.baseAddress!, dkBase = dkp.baseAddress!, dvBase = dvp.baseAddress!, dlBase = dlp.baseAddress!
                DispatchQueue.concurrentPerform(iterations: workers) { worker in
                    var S = [Float](repeating: 0, count: bq * bk), dP = S
                    var rowDot = [Float](repeating: 0, count: bq)
                    var g = worker
                    while g < G {
                        for b in 0..<B {
                            let q = qAll.baseAddress! + b * T * H * E
                            let k = kAll.baseAddress! + b * T * G * E + g * E
                            let v = vAll.baseAddress! + b * T * G * E + g * E
                            let o = oAll.baseAddress! + b * T * H * E
                            let d = dAll.baseAddress! + b * T * H * E
                            let lse = lAll.baseAddress! + b * H * T
                            let dkg = dkBase + b * T * G * E + g * E, dvg = dvBase + b * T * G * E + g * E
                            for h in (g * group)..<((g + 1) * group) {
                                let alpha = lambda[h] * inverseRootE
                                var q0 = 0
                                while q0 < T {
                                    let rows = min(bq, T - q0)
                                    let qh = q + q0 * H * E + h * E, dh = d + q0 * H * E + h * E
                                    for r in 0..<rows { rowDot[r] = cblas_sdot(Int32(E), dh + r * H * E, 1, o + (q0 + r) * H * E + h * E, 1) }
                                    var k0 = 0
                                    while k0 < q0 + rows {
                                        let cols = min(bk, q0 + rows - k0)
                                        S.withUnsafeMutableBufferPointer { sp in dP.withUnsafeMutableBufferPointer { pp in
                                            let s = sp.baseAddress!, dp = pp.baseAddress!
                                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(cols), Int32(E), alpha, qh, Int32(H * E), k + k0 * G * E, Int32(G * E), 0, s, Int32(bk))
                                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(cols), Int32(E), 1, dh, Int32(H * E), v + k0 * G * E, Int32(G * E), 0, dp, Int32(bk))
                                            var lambdaGrad: Float = 0
                                            for r in 0..<rows {
                                                // keys j ≤ i are visible; the rest of the row is masked to 0
                                                let i = q0 + r, visible = max(0, min(cols, i - k0 + 1))
                                                let sr = s + r * bk, dr = dp + r * bk
                                                // S → P (for dV) and dP → dS (for dQ and dK)
                                                lambdaGrad += SoftmaxRows.backward(scores: sr, dP: dr, count: visible,
                                                                                   logSumExp: lse[h * T + i], rowDot: rowDot[r])
                                                (sr + visible).update(repeating: 0, count: cols - visible)
                                                (dr + visible).update(repeating: 0, count: cols - visible)
                                            }
                                            dlBase[h] += lambdaGrad / lambda[h]
                                            // dV += Pᵀ·dO ; dQ += α·dS·K ; dK += α·dSᵀ·Q
                                            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(cols), Int32(E), Int32(rows), 1, s, Int32(bk), dh, Int32(H * E), 1, dvg + k0 * G * E, Int32(G * E))
                                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(E), Int32(cols), alpha, dp, Int32(bk), k + k0 * G * E, Int32(G * E), 1, dqBase + b * T * H * E + q0 * H * E + h * E, Int32(H * E))
                                            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(cols), Int32(E), Int32(rows), alpha, dp, Int32(bk), qh, Int32(H * E), 1, dkg + k0 * G * E, Int32(G * E))
                                        } }
                                        k0 += cols
                                    }
                                    q0 += rows
                                }
                            }
                        }
                        g += workers
                    }
                }
              } } }
              } } }
            }
        } } }
        for h in 0..<H { dLambda[h] += dl[h] }
        return (dq, dk, dv)
    }
}
