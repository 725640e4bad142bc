import COpenBLAS
import Foundation

/// The LM head and next-token loss, over row chunks of the final-normed hidden states (never
/// [N, V] at once), for inference and training alike.
///
///     logits = hf · W_headᵀ                                   [rows, V]
///     loss_t = log Σ_j e^(logits_j) − logits[token_{t+1}]     (rows t < T−1 of each sequence)
///     dlogits = (softmax(logits) − onehot) · scale,  dhf = dlogits · W_head,  dW_head += dlogitsᵀ · hf
struct LMHead {
    let head: [Float]          // [V, D]
    let vocab: Int             // V
    let width: Int             // D

    struct Gradient {
        var dhf: UnsafeMutablePointer<Float>          // [N, D], written
        var dHead: UnsafeMutablePointer<Float>?       // [V, D], accumulated (weight gradients only)
        var scale: Float                              // ∂loss/∂(each token's loss): 1/count for a mean
    }

    /// Runs the head over hf [B·T, D]. Logits of `logitPositions` go to `logits` [B, P, V];
    /// per-token losses to `losses` [B, T−1] when given; with `gradient`, dhf (and dW_head).
    /// Returns the sum of the losses of every row that has a next token.
    @discardableResult
    func run(hf: UnsafePointer<Float>, tokens: [[Int]], length T: Int, logitPositions: [Int] = [],
             logits: UnsafeMutablePointer<Float>? = nil, losses: UnsafeMutablePointer<Float>? = nil,
             gradient: Gradient? = nil) -> Double {
        let V = vocab, D = width, N = tokens.count * T
        let wantLoss = losses != nil || gradient != nil
        let positionIndex = Dictionary(logitPositions.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        let chunk = max(1, min(N, (32 << 20) / (4 * V)))
        let buffer = FloatBuffer(chunk * V)
        let l = buffer.pointer
        var total = 0.0
        var r0 = 0
        while r0 < N {
            let rows = min(chunk, N - r0)
            let needed = (r0..<(r0 + rows)).contains { positionIndex[$0 % T] != nil || (wantLoss && $0 % T < T - 1) }
            guard needed else { r0 += rows; continue }
            Kernels.matmul(l, hf + r0 * D, head, bias: nil, rows: rows, in: D, out: V)
            for r in 0..<rows {
                let n = r0 + r, b = n / T, t = n % T
                let row = l + r * V
                if let p = positionIndex[t], let logits {
                    (logits + (b * logitPositions.count + p) * V).update(from: row, count: V)
                }
                guard wantLoss && t < T - 1 else {
                    if gradient != nil { row.update(repeating: 0, count: V) }
                    continue
                }
                // −log softmax(row)[target], leaving e^(row − max) in the row
                let target = tokens[b][t + 1]
                let m = SoftmaxRows.maximum(row, count: V, start: -.infinity)
                let targetLogit = Double(row[target] - m)
                let s = Double(SoftmaxRows.exponentiate(row, count: V, minus: m).sum)
                let loss = log(s) - targetLogit
                total += loss
                losses?[b * (T - 1) + t] = Float(loss)
                if let gradient {
                    cblas_sscal(Int32(V), Float(1 / s) * gradient.scale, row, 1)
                    row[target] -= gradient.scale
                }
            }
            if let gradient {
                // dhf[r0…] = dlogits · W_head        [rows, V]·[V, D]
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(D), Int32(V), 1, l, Int32(V), head, Int32(D),
                            0, gradient.dhf + r0 * D, Int32(D))
                // dW_head += dlogitsᵀ · hf           [V, rows]·[rows, D]
                if let dHead = gradient.dHead {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(V), Int32(D), Int32(rows), 1, l, Int32(V),
                                hf + r0 * D, Int32(D), 1, dHead, Int32(D))
                }
            }
            r0 += rows
        }
        return total
    }
}
