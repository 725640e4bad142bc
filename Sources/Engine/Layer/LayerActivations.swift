import Checkpoints

/// What one layer's forward keeps for its backward, for all B·T = N rows at once.
///
/// The attention half is always complete when the backward runs (it needs every row's q, k,
/// v and output at once). The MLP half is optional: MLP rows are independent, so without it
/// the backward recomputes gate, up and SwiGLU one row chunk at a time from `xMid` (activation
/// checkpointing; see `Layer.backward`). Buffers are `FloatBuffer`s (freed with the object)
/// so that the layer code can address row ranges of them directly.
public final class LayerActivations {
    public let rows: Int             // N
    public let rstd1: UnsafeMutablePointer<Float>        // [N]       1/rms of the layer input
    public let h1: UnsafeMutablePointer<Float>           // [N, D]    rmsnorm(x_in) · w_attn_norm
    public let qRaw: UnsafeMutablePointer<Float>         // [N, H·E]  q projection before the q-norm (q/k-norm models only)
    public let kRaw: UnsafeMutablePointer<Float>         // [N, G·E]
    public let qRstd: UnsafeMutablePointer<Float>        // [N·H]     1/rms of each query head (q/k-norm models only)
    public let kRstd: UnsafeMutablePointer<Float>        // [N·G]
    public let q: UnsafeMutablePointer<Float>            // [N, H·E]  after q-norm and RoPE, before λ
    public let k: UnsafeMutablePointer<Float>            // [N, G·E]  after k-norm and RoPE
    public let v: UnsafeMutablePointer<Float>            // [N, G·E]
    public let att: UnsafeMutablePointer<Float>          // [N, H·E]  attention output
    public let lse: UnsafeMutablePointer<Float>          // [B, H, T] log-sum-exp of each λ-scaled score row
    public let xMid: UnsafeMutablePointer<Float>         // [N, D]    residual after attention
    public let keepsMLP: Bool
    public let rstd2: UnsafeMutablePointer<Float>        // [N]       (keepsMLP only)
    public let h2: UnsafeMutablePointer<Float>           // [N, D]
    public let g: UnsafeMutablePointer<Float>            // [N, F]    gate projection
    public let u: UnsafeMutablePointer<Float>            // [N, F]    up projection
    public let a: UnsafeMutablePointer<Float>            // [N, F]    silu(g) · u

    public init(config c: ModelConfig, rows n: Int, keepMLP: Bool) {
        let D = c.hidden, HE = c.heads * c.headDim, GE = c.kvHeads * c.headDim, F = c.intermediate
        var all: [FloatBuffer] = []
        func zeros(_ count: Int) -> UnsafeMutablePointer<Float> {
            all.append(FloatBuffer(count))
            return all[all.count - 1].pointer
        }
        rows = n
        rstd1 = zeros(n); h1 = zeros(n * D)
        qRaw = zeros(c.qkNorm ? n * HE : 0); kRaw = zeros(c.qkNorm ? n * GE : 0)
        qRstd = zeros(c.qkNorm ? n * c.heads : 0); kRstd = zeros(c.qkNorm ? n * c.kvHeads : 0)
        q = zeros(n * HE); k = zeros(n * GE); v = zeros(n * GE); att = zeros(n * HE)
        lse = zeros(n * c.heads); xMid = zeros(n * D)
        keepsMLP = keepMLP
        rstd2 = zeros(keepMLP ? n : 0); h2 = zeros(keepMLP ? n * D : 0)
        g = zeros(keepMLP ? n * F : 0); u = zeros(keepMLP ? n * F : 0); a = zeros(keepMLP ? n * F : 0)
        allocations = all
    }

    private var allocations: [FloatBuffer] = []

    /// Bytes one layer's activations take for `rows` rows.
    public static func bytes(config c: ModelConfig, rows n: Int, keepMLP: Bool) -> Int {
        let D = c.hidden, HE = c.heads * c.headDim, GE = c.kvHeads * c.headDim, F = c.intermediate
        var floats = n * (2 + 2 * D + 2 * HE + 2 * GE + c.heads)
        if c.qkNorm { floats += n * (HE + GE + c.heads + c.kvHeads) }
        if keepMLP { floats += n * (1 + D + 3 * F) }
        return 4 * floats
    }
}
