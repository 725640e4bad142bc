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

    /// With `rstd`, each row's 1/rms is kept there too (the backward needs it).
    public static func rmsnorm(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                               rows n: Int, width d: Int, eps: Float, rstd: UnsafeMutablePointer<Float>? = nil) {
        for r in 0..<n {
            let row = x + r * d, out = y + r * d
            let sumSquares = cblas_sdot(Int32(d), row, 1, row, 1)
            let scale = 1 / (sumSquares / Float(d) + eps).squareRoot()
            rstd?[r] = scale
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
        var k = 0
        while k + 16 <= count {  // the same operations on sixteen lanes: bit-identical to the tail loop
            let x = Vector16.load(g + k)
            Vector16.store(x / (1 + FastMath.exp(-x)) * Vector16.load(u + k), g + k)
            k += 16
        }
        while k < count {
            let x = g[k]
            g[k] = x / (1 + FastMath.exp(-x)) * u[k]
            k += 1
        }
    }

    public static func swigluNaive(_ g: UnsafeMutablePointer<Float>, _ u: UnsafePointer<Float>, count: Int) {
        for k in 0..<count {
            let x = g[k]
            g[k] = x / (1 + FastMath.exp(-x)) * u[k]
        }
    }

    /// The SwiGLU backward: with a = silu(g)·u, ∂a/∂u = silu(g) and ∂a/∂g = u·σ(g)·(1 + g·(1 − σ(g))),
    /// so du = da·g·σ(g) and dg = da·u·σ(g)·(1 + g·(1 − σ(g))).
    public static func swigluBackward(dg: UnsafeMutablePointer<Float>, du: UnsafeMutablePointer<Float>, da: UnsafePointer<Float>,
                                      g: UnsafePointer<Float>, u: UnsafePointer<Float>, count: Int) {
        var i = 0
        while i + 16 <= count {
            let x = Vector16.load(g + i), d = Vector16.load(da + i)
            let sig = 1 / (1 + FastMath.exp(-x))
            Vector16.store(d * x * sig, du + i)
            Vector16.store(d * Vector16.load(u + i) * sig * (1 + x * (1 - sig)), dg + i)
            i += 16
        }
        while i < count {
            let x = g[i], sig = 1 / (1 + FastMath.exp(-x))
            du[i] = da[i] * x * sig
            dg[i] = da[i] * u[i] * sig * (1 + x * (1 - sig))
            i += 1
        }
    }

    /// x += y
    public static func add(_ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, count: Int) {
        cblas_saxpy(Int32(count), 1, y, 1, x, 1)
    }
}

/// Unaligned sixteen-lane loads and stores for the vector loops.
enum Vector16 {
    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
    }

    @inline(__always)
    static func load(_ p: UnsafeMutablePointer<Float>) -> SIMD16<Float> { load(UnsafePointer(p)) }

    @inline(__always)
    static func store(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
    }
}

/// A fast exp for the softmax and SiLU (Cephes `expf`): k = round(x·log2 e), r = x − k·ln 2
/// in two parts (Cody–Waite, so r is exact), e^r by a degree-6 polynomial, times 2^k built
/// from its bits. Relative error about 1e-7; below −87 gives 0; above 88 Foundation takes over.
extension Kernels {
    /// True when no value is NaN or ±Inf: x − x is 0 for every finite x and NaN otherwise, so
    /// sixteen lanes accumulate it and one test at the end decides.
    public static func allFinite(_ values: [Float]) -> Bool {
        values.withUnsafeBufferPointer { b in
            var acc = SIMD16<Float>(repeating: 0)
            var i = 0
            while i + 16 <= b.count {
                let v = SIMD16<Float>(b[i..<(i + 16)])
                acc += v - v
                i += 16
            }
            var tail: Float = 0
            while i < b.count { tail += b[i] - b[i]; i += 1 }
            return !(acc.sum() + tail).isNaN
        }
    }

    /// The reference for `allFinite`.
    public static func allFiniteNaive(_ values: [Float]) -> Bool { values.allSatisfy(\.isFinite) }
}

public enum FastMath {
    @inline(__always)
    public static func exp(_ x: Float) -> Float {
        if x.isNaN { return x }                 // never reaches the integer conversion below
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

    /// `FastMath.exp` on sixteen lanes, line for line the same operations in the same order (a
    /// deliberate twin, tested bit for bit against the scalar one): for x in
    /// [−87, 88] each lane equals the scalar result bit for bit; below −87 it is 0.
    @inline(__always)
    public static func exp(_ x: SIMD16<Float>) -> SIMD16<Float> {
        if any(x .> 88) {  // never in a softmax (every exponent is ≤ 0): fall back per lane
            var out = x
            for i in 0..<16 { out[i] = FastMath.exp(x[i]) }
            return out
        }
        // Adding 1.5·2^23 rounds to the nearest integer (ties to even, as `rounded()` does)
        // and leaves that integer in the low mantissa bits.
        let magic: Float = 12_582_912
        let shifted = x * 1.442_695_040_888_963 + SIMD16<Float>(repeating: magic)
        let k = shifted - SIMD16<Float>(repeating: magic)
        let r = (x - k * 0.693_359_375) - k * -2.121_944_400_5e-4
        let z = r * r
        var p = SIMD16<Float>(repeating: 1.987_569_150_0e-4)
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        let e = p * z + r + 1
        let kBits = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000  // = k
        let twoToK = unsafeBitCast((kBits &+ 127) &<< 23, to: SIMD16<Float>.self)
        return (e * twoToK).replacing(with: 0, where: x .< -87)
    }
}
