import Checkpoints
import Foundation

/// What a layer needs besides its weights: the model's shape, RoPE tables for the T positions
/// of this pass, worker threads and the row chunk.
public struct LayerContext {
    public let config: ModelConfig
    public let rope: Rope
    public let cos: [Float], sin: [Float]      // [T, rotaryDim/2]
    public let length: Int                     // T
    public let threads: Int
    /// Rows of a sequence processed together (bounds every buffer but the residual stream,
    /// K/V and what is saved for a backward).
    public let rowChunk: Int

    public init(config: ModelConfig, rope: Rope, length: Int, threads: Int, rowChunk: Int = 512) {
        self.config = config
        self.rope = rope
        (cos, sin) = rope.tables(count: length)
        self.length = length
        self.threads = threads
        self.rowChunk = max(1, min(length, rowChunk))
    }

    func shape(layer l: Int) -> Attention.Shape {
        Attention.Shape(length: length, heads: config.heads, kvHeads: config.kvHeads, headDim: config.headDim,
                        window: config.window(layer: l))
    }
}

/// One Llama-family decoder layer, written once for inference, training and the temperature
/// search (llm.c style: `forward` here, `backward` beside it in LayerBackward.swift).
///
///     h1  = rmsnorm(x) · w_attn_norm                               [N, D]
///     q   = rope(qnorm(h1·W_qᵀ + b_q)),  k = rope(knorm(h1·W_kᵀ + b_k)),  v = h1·W_vᵀ + b_v
///     att = softmax(λ_h · q·kᵀ / √E, causal[, window]) · v         [N, H·E]
///     x  += att·W_oᵀ + b_o                                         (x_mid)
///     h2  = rmsnorm(x) · w_mlp_norm
///     x  += (silu(h2·W_gateᵀ + b_g) ∘ (h2·W_upᵀ + b_u))·W_downᵀ + b_d
///
/// Shapes: B sequences of T rows, N = B·T, D model width, F MLP width, H query heads, G key/value
/// heads, E head dim. RoPE runs on RoPE layers only (NoPE layers skip it); q/k-norm and biases
/// where the weights have them.
public enum Layer {
    /// Runs layer `l` over the residual stream `x` [N, D] in place.
    ///
    /// Each sequence is processed in row chunks: normalise, project, rotate and store the
    /// chunk's keys and values, attend from the chunk's queries to every visible key so far,
    /// then the output projection and the MLP. With `save`, every activation the backward
    /// needs is written there (the MLP half only if `save.keepsMLP`); `attentionOnly` stops after
    /// x_mid (the recomputation in the backward needs no more).
    /// `entropy` points at this layer's [B, H, T] block of attention entropies (bits).
    ///
    /// With `cache` (incremental decoding) `x` holds only the rows of the positions
    /// `cache.positions` of each sequence, [B·n, D]; their keys and values are written into the
    /// cache beside those of the earlier positions, which the queries attend to. `ctx.length`
    /// is then the cache's capacity (RoPE tables cover every position it can hold).
    public static func forward(_ w: LayerWeights, layer l: Int, x: UnsafeMutablePointer<Float>, sequences B: Int,
                               context ctx: LayerContext, lambda: [Float], entropy: UnsafeMutablePointer<Float>?,
                               save: LayerActivations? = nil, attentionOnly: Bool = false, cache: KVCache.Slot? = nil) {
        precondition(cache == nil || (save == nil && entropy == nil), "a cached decode keeps no activations or entropies")
        let c = ctx.config, T = ctx.length
        let span = cache?.positions ?? 0..<T      // positions of x's rows in each sequence
        let D = c.hidden, E = c.headDim, H = c.heads, G = c.kvHeads, F = c.intermediate
        let eps = Float(c.normEps)
        let R = ctx.rowChunk
        let shape = ctx.shape(layer: l)
        let rope = c.positions[l] == .rope
        // Chunk scratch (unused buffers stay one element when `save` supplies the rows).
        let h = FloatBuffer(R * D), proj = FloatBuffer(R * D)
        let q = FloatBuffer(save == nil ? R * H * E : 0), att = FloatBuffer(save == nil ? R * H * E : 0)
        let kv = FloatBuffer(save == nil && cache == nil ? 2 * T * G * E : 0)
        let mlp = MLPBuffers(rows: R, width: F)

        for b in 0..<B {
            var r0 = span.lowerBound
            while r0 < span.upperBound {
                let rows = min(R, span.upperBound - r0)
                let n0 = b * span.count + r0 - span.lowerBound   // first row of the chunk in x [B·n, …]
                let xc = x + n0 * D
                // h1 = rmsnorm(x) · w_attn_norm
                let h1 = save.map { $0.h1 + n0 * D } ?? h.pointer
                Kernels.rmsnorm(h1, xc, w.attnNorm, rows: rows, width: D, eps: eps, rstd: save.map { $0.rstd1 + n0 })
                // q [rows, H·E]; k and v of positions r0… into the sequence's [T, G·E] blocks
                let qc = save.map { $0.q + n0 * H * E } ?? q.pointer
                let kSeq = cache?.keys(sequence: b) ?? save.map { $0.k + b * T * G * E } ?? kv.pointer
                let vSeq = cache?.values(sequence: b) ?? save.map { $0.v + b * T * G * E } ?? kv.pointer + T * G * E
                let kc = kSeq + r0 * G * E, vc = vSeq + r0 * G * E
                if let qn = w.qNorm, let kn = w.kNorm {
                    // per-head RMSNorm of q and k (the pre-norm projections kept for the backward)
                    let qRaw = save.map { $0.qRaw + n0 * H * E } ?? qc, kRaw = save.map { $0.kRaw + n0 * G * E } ?? kc
                    Kernels.matmul(qRaw, h1, w.wq, bias: w.bq, rows: rows, in: D, out: H * E)
                    Kernels.matmul(kRaw, h1, w.wk, bias: w.bk, rows: rows, in: D, out: G * E)
                    Kernels.rmsnorm(qc, qRaw, qn, rows: rows * H, width: E, eps: eps, rstd: save.map { $0.qRstd + n0 * H })
                    Kernels.rmsnorm(kc, kRaw, kn, rows: rows * G, width: E, eps: eps, rstd: save.map { $0.kRstd + n0 * G })
                } else {
                    Kernels.matmul(qc, h1, w.wq, bias: w.bq, rows: rows, in: D, out: H * E)
                    Kernels.matmul(kc, h1, w.wk, bias: w.bk, rows: rows, in: D, out: G * E)
                }
                Kernels.matmul(vc, h1, w.wv, bias: w.bv, rows: rows, in: D, out: G * E)
                if rope {
                    ctx.rope.apply(qc, rows: rows, heads: H, headDim: E, start: r0, cos: ctx.cos, sin: ctx.sin)
                    ctx.rope.apply(kc, rows: rows, heads: G, headDim: E, start: r0, cos: ctx.cos, sin: ctx.sin)
                }
                // att = softmax(λ·q·kᵀ/√E) · v for queries r0…, keys 0…r0+rows−1
                let ac = save.map { $0.att + n0 * H * E } ?? att.pointer
                Attention.tiled(q: qc, k: kSeq, v: vSeq, out: ac, entropy: entropy.map { $0 + b * H * T },
                                logSumExp: save.map { $0.lse + b * H * T }, lambda: lambda, shape: shape,
                                rows: r0..<(r0 + rows), threads: ctx.threads)
                // x += att · W_oᵀ + b_o
                Kernels.matmul(proj.pointer, ac, w.wo, bias: w.bo, rows: rows, in: H * E, out: D)
                Kernels.add(xc, proj.pointer, count: rows * D)
                if let save { (save.xMid + n0 * D).update(from: xc, count: rows * D) }
                if !attentionOnly {
                    // x += down(silu(gate(h2)) · up(h2)) + b_d
                    let m = save.flatMap { $0.keepsMLP ? MLPRows(saved: $0, row: n0, width: D, mlpWidth: F) : nil } ?? mlp.rows(h: h.pointer)
                    mlpInputs(w, xMid: xc, rows: rows, into: m, eps: eps, width: D, mlpWidth: F)
                    Kernels.matmul(proj.pointer, m.a, w.wDown, bias: w.bDown, rows: rows, in: F, out: D)
                    Kernels.add(xc, proj.pointer, count: rows * D)
                }
                r0 += rows
            }
        }
    }

    /// The MLP up to its output projection, for `rows` rows of x_mid:
    /// h2 = rmsnorm(x_mid)·w, g = h2·W_gateᵀ + b, u = h2·W_upᵀ + b, a = silu(g)·u.
    /// The forward and the backward's recomputation both call it.
    static func mlpInputs(_ w: LayerWeights, xMid: UnsafePointer<Float>, rows: Int, into m: MLPRows, eps: Float,
                          width D: Int, mlpWidth F: Int) {
        Kernels.rmsnorm(m.h2, xMid, w.mlpNorm, rows: rows, width: D, eps: eps, rstd: m.rstd2)
        Kernels.matmul(m.g, m.h2, w.wGate, bias: w.bGate, rows: rows, in: D, out: F)
        Kernels.matmul(m.u, m.h2, w.wUp, bias: w.bUp, rows: rows, in: D, out: F)
        if m.a != m.g { m.a.update(from: m.g, count: rows * F) }
        Kernels.swiglu(m.a, m.u, count: rows * F)
    }
}

/// Where the MLP's intermediate rows live: in saved activations, or in chunk scratch.
struct MLPRows {
    var h2: UnsafeMutablePointer<Float>, rstd2: UnsafeMutablePointer<Float>
    var g: UnsafeMutablePointer<Float>, u: UnsafeMutablePointer<Float>, a: UnsafeMutablePointer<Float>

    init(h2: UnsafeMutablePointer<Float>, rstd2: UnsafeMutablePointer<Float>, g: UnsafeMutablePointer<Float>,
         u: UnsafeMutablePointer<Float>, a: UnsafeMutablePointer<Float>) {
        self.h2 = h2; self.rstd2 = rstd2; self.g = g; self.u = u; self.a = a
    }

    init(saved s: LayerActivations, row n0: Int, width D: Int, mlpWidth F: Int) {
        self.init(h2: s.h2 + n0 * D, rstd2: s.rstd2 + n0, g: s.g + n0 * F, u: s.u + n0 * F, a: s.a + n0 * F)
    }
}

/// Chunk scratch for the MLP. In the forward a = silu(g)·u overwrites g (g is not needed
/// again); the backward keeps g, u and a apart.
final class MLPBuffers {
    let g: FloatBuffer, u: FloatBuffer, a: FloatBuffer, rstd2: FloatBuffer

    init(rows: Int, width F: Int, separateOutput: Bool = false) {
        g = FloatBuffer(rows * F)
        u = FloatBuffer(rows * F)
        a = FloatBuffer(separateOutput ? rows * F : 0)
        rstd2 = FloatBuffer(rows)
    }

    func rows(h: UnsafeMutablePointer<Float>) -> MLPRows {
        MLPRows(h2: h, rstd2: rstd2.pointer, g: g.pointer, u: u.pointer, a: a.count > 0 ? a.pointer : g.pointer)
    }
}
