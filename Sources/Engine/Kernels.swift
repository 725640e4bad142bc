import COpenBLAS
import Foundation

/// The dense kernels of the forward pass, each with a naive twin the tests hold it against.
///
/// Shape legend (llm.c style): N rows (tokens), D model width, F MLP width, V vocabulary,
/// H query heads, G key/value heads, E head dim.
public enum Kernels {

    // MARK: - matmul: y[N, O] = x[N, I] · W[O, I]ᵀ (+ b[O])  — the nn.Linear convention

    /// OpenBLAS sgemm (row-major, W transposed).
    public static func matmul(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                              bias: UnsafePointer<Float>?, rows n: Int, in i: Int, out o: Int) {
        guard n > 0, o > 0 else { return }
        if let bias {
            for r in 0..<n { (y + r * o).update(from: bias, count: o) }
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(o), Int32(i),
                    1, x, Int32(i), w, Int32(i), bias == nil ? 0 : 1, y, Int32(o))
    }

    /// The same product by three loops, in Double.
    public static func matmulNaive(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                                   bias: UnsafePointer<Float>?, rows n: Int, in i: Int, out o: Int) {
        for r in 0..<n {
            for c in 0..<o {
                var s = Double(bias?[c] ?? 0)
                for k in 0..<i { s += Double(x[r * i + k]) * Double(w[c * i + k]) }
                y[r * o + c] = Float(s)
            }
        }
    }

    // MARK: - RMSNorm: y = x / sqrt(mean(x²) + eps) · w   (per row of width D)

    public static func rmsnorm(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                               rows n: Int, width d: Int, eps: Float) {
        for r in 0..<n {
            let row = x + r * d, out = y + r * d
            let sumSquares = cblas_sdot(Int32(d), row, 1, row, 1)
            let scale = 1 / (sumSquares / Float(d) + eps).squareRoot()
            for k in 0..<d { out[k] = row[k] * scale * w[k] }
        }
    }

    public static func rmsnormNaive(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                                    rows n: Int, width d: Int, eps: Float) {
        for r in 0..<n {
            var s = 0.0
            for k in 0..<d { s += Double(x[r * d + k]) * Double(x[r * d + k]) }
            let scale = 1 / (s / Double(d) + Double(eps)).squareRoot()
            for k in 0..<d { y[r * d + k] = Float(Double(x[r * d + k]) * scale * Double(w[k])) }
        }
    }

    // MARK: - SwiGLU: a = silu(g) · u, in place into g

    public static func swiglu(_ g: UnsafeMutablePointer<Float>, _ u: UnsafePointer<Float>, count: Int) {
        for k in 0..<count {
            let x = g[k]
            g[k] = x / (1 + FastMath.exp(-x)) * u[k]
        }
    }

    /// x += y
    public static func add(_ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, count: Int) {
        cblas_saxpy(Int32(count), 1, y, 1, x, 1)
    }
}

/// A fast exp for the softmax and SiLU (Cephes `expf`): k = round(x·log2 e), r = x − k·ln 2
/// in two parts (Cody–Waite, so r is exact), e^r by a degree-6 polynomial, times 2^k built
/// from its bits. Relative error about 1e-7; below −87 gives 0; above 88 Foundation takes over.
public enum FastMath {
    @inline(__always)
    public static func exp(_ x: Float) -> Float {
        if x < -87 { return 0 }
        if x > 88 { return Foundation.exp(x) }  // keeps 2^k below 2^128
        let k = (x * 1.442_695_040_888_963).rounded(.toNearestOrEven)
        let r = (x - k * 0.693_359_375) - k * -2.121_944_400_5e-4
        let z = r * r
        var p: Float = 1.987_569_150_0e-4
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        let e = p * z + r + 1
        return e * Float(bitPattern: UInt32(Int32(k) + 127) << 23)
    }

    /// e^x for a buffer, in place.
    public static func expInPlace(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { x[i] = exp(x[i]) }
    }
}
