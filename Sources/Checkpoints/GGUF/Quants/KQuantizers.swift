import Foundation

/// Q4_K, Q5_K and Q6_K quantisation as ggml's reference quantisers do it
/// (`quantize_row_q4_K_ref`, `_q5_K_ref`, `_q6_K_ref` with `make_qkx2_quants` and
/// `make_qx_quants`): per 32-element (Q4_K/Q5_K) or 16-element (Q6_K) sub-block, search the
/// scale (and min) that minimises the weighted squared error, then quantise the sub-block
/// scales themselves to 6 or 8 bits under one fp16 super-scale.
enum KQuantizers {
    /// ggml's `nearest_int`: round half to even.
    @inline(__always) static func nearest(_ v: Float) -> Int { v.isFinite ? Int(v.rounded(.toNearestOrEven)) : 0 }

    /// Best (scale, min) for `x` with levels 0…nmax, weighted by `w` (ggml `make_qkx2_quants`).
    /// Writes the levels into `L`; returns the scale and −min (both ≥ 0 for the caller).
    static func scaleMin(_ x: UnsafePointer<Float>, _ w: [Float], n: Int, nmax: Int, L: inout [UInt8],
                         rmin: Float, rdelta: Float, nstep: Int) -> (scale: Float, negMin: Float) {
        var lo = x[0], hi = x[0]
        var sumW = w[0], sumX = w[0] * x[0]
        for i in 1..<n {
            lo = min(lo, x[i]); hi = max(hi, x[i])
            sumW += w[i]; sumX += w[i] * x[i]
        }
        if lo > 0 { lo = 0 }
        if hi == lo {
            for i in 0..<n { L[i] = 0 }
            return (0, -lo)
        }
        var iscale = Float(nmax) / (hi - lo)
        let scale = 1 / iscale
        var bestError: Float = 0
        for i in 0..<n {
            let l = max(0, min(nmax, nearest(iscale * (x[i] - lo))))
            L[i] = UInt8(l)
            let diff = scale * Float(l) + lo - x[i]
            bestError += w[i] * diff * diff
        }
        var best = (scale: scale, min: lo)
        var aux = [UInt8](repeating: 0, count: n)
        for step in 0...nstep {
            iscale = (rmin + rdelta * Float(step) + Float(nmax)) / (hi - lo)
            var sumL: Float = 0, sumL2: Float = 0, sumXL: Float = 0
            for i in 0..<n {
                let l = max(0, min(nmax, nearest(iscale * (x[i] - lo))))
                aux[i] = UInt8(l)
                sumL += w[i] * Float(l)
                sumL2 += w[i] * Float(l) * Float(l)
                sumXL += w[i] * Float(l) * x[i]
            }
            let D = sumW * sumL2 - sumL * sumL
            guard D > 0 else { continue }
            var thisScale = (sumW * sumXL - sumX * sumL) / D
            var thisMin = (sumL2 * sumX - sumL * sumXL) / D
            if thisMin > 0 {
                thisMin = 0
                thisScale = sumXL / sumL2
            }
            var error: Float = 0
            for i in 0..<n {
                let diff = thisScale * Float(aux[i]) + thisMin - x[i]
                error += w[i] * diff * diff
            }
            if error < bestError {
                for i in 0..<n { L[i] = aux[i] }
                bestError = error
                best = (thisScale, thisMin)
            }
        }
        return (best.scale, -best.min)
    }

    /// Q4_K (bits 4) and Q5_K (bits 5): eight 32-element sub-blocks with 6-bit scales and mins.
    static func q45_K(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, bits: Int) {
        let nmax = (1 << bits) - 1
        var L = [UInt8](repeating: 0, count: 256)
        var scales = [Float](repeating: 0, count: 8), mins = [Float](repeating: 0, count: 8)
        var maxScale: Float = 0, maxMin: Float = 0
        for j in 0..<8 {
            let sub = x + 32 * j
            var sumX2: Float = 0
            for l in 0..<32 { sumX2 += sub[l] * sub[l] }
            let avX = (sumX2 / 32).squareRoot()
            let w = (0..<32).map { avX + abs(sub[$0]) }
            var sl = [UInt8](repeating: 0, count: 32)
            let r = bits == 4 ? scaleMin(sub, w, n: 32, nmax: nmax, L: &sl, rmin: -1, rdelta: 0.1, nstep: 20)
                              : scaleMin(sub, w, n: 32, nmax: nmax, L: &sl, rmin: -0.5, rdelta: 0.1, nstep: 15)
            scales[j] = r.scale; mins[j] = r.negMin
            for l in 0..<32 { L[32 * j + l] = sl[l] }  // kept where the sub-scale rounds to 0, as ggml does
            maxScale = max(maxScale, r.scale); maxMin = max(maxMin, r.negMin)
        }
        let invScale: Float = maxScale > 0 ? 63 / maxScale : 0
        let invMin: Float = maxMin > 0 ? 63 / maxMin : 0
        var packed = [UInt8](repeating: 0, count: 12)
        for j in 0..<8 {
            let ls = UInt8(min(63, max(0, nearest(invScale * scales[j]))))
            let lm = UInt8(min(63, max(0, nearest(invMin * mins[j]))))
            if j < 4 {
                packed[j] = ls
                packed[j + 4] = lm
            } else {
                packed[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4)
                packed[j - 4] |= (ls >> 4) << 6
                packed[j] |= (lm >> 4) << 6
            }
        }
        Quantizers.storeHalf(maxScale / 63, y, 0)
        Quantizers.storeHalf(maxMin / 63, y, 2)
        for (i, b) in packed.enumerated() { y.storeBytes(of: b, toByteOffset: 4 + i, as: UInt8.self) }
        let d = BlockCodecs.half(y, 0), dmin = BlockCodecs.half(y, 2)
        for j in 0..<8 {
            let (sc, m) = BlockCodecs.scaleMinK4(j, y + 4)
            let dj = d * Float(sc)
            guard dj != 0 else { continue }
            let dm = dmin * Float(m)
            for i in 0..<32 {
                L[32 * j + i] = UInt8(max(0, min(nmax, nearest((x[32 * j + i] + dm) / dj))))
            }
        }
        if bits == 4 {
            for j in stride(from: 0, to: 256, by: 64) {
                for l in 0..<32 {
                    y.storeBytes(of: L[j + l] | (L[j + l + 32] << 4), toByteOffset: 16 + j / 2 + l, as: UInt8.self)
                }
            }
        } else {
            var qh = [UInt8](repeating: 0, count: 32)
            var m1: UInt8 = 1, m2: UInt8 = 2
            for n in stride(from: 0, to: 256, by: 64) {
                for j in 0..<32 {
                    var l1 = L[n + j], l2 = L[n + j + 32]
                    if l1 > 15 { l1 -= 16; qh[j] |= m1 }
                    if l2 > 15 { l2 -= 16; qh[j] |= m2 }
                    y.storeBytes(of: l1 | (l2 << 4), toByteOffset: 48 + n / 2 + j, as: UInt8.self)
                }
                m1 <<= 2; m2 <<= 2
            }
            for (i, b) in qh.enumerated() { y.storeBytes(of: b, toByteOffset: 16 + i, as: UInt8.self) }
        }
    }

    static func q4_K(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) { q45_K(x, y, bits: 4) }
    static func q5_K(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) { q45_K(x, y, bits: 5) }

    /// Symmetric scale for levels −nmax…nmax−1, weighted by x² (ggml `make_qx_quants`,
    /// rmse_type 1). Writes levels + nmax into `L`.
    static func symmetricScale(_ x: UnsafePointer<Float>, n: Int, nmax: Int, L: inout [UInt8]) -> Float {
        var maxValue: Float = 0, amax: Float = 0
        for i in 0..<n where abs(x[i]) > amax { amax = abs(x[i]); maxValue = x[i] }
        if amax < 1e-15 {
            for i in 0..<n { L[i] = 0 }
            return 0
        }
        func pass(_ iscale: Float) -> (sumLX: Float, sumL2: Float) {
            var sumLX: Float = 0, sumL2: Float = 0
            for i in 0..<n {
                let l = max(-nmax, min(nmax - 1, nearest(iscale * x[i])))
                let w = x[i] * x[i]
                sumLX += w * x[i] * Float(l)
                sumL2 += w * Float(l) * Float(l)
            }
            return (sumLX, sumL2)
        }
        func levels(_ iscale: Float) {
            for i in 0..<n { L[i] = UInt8(nmax + max(-nmax, min(nmax - 1, nearest(iscale * x[i])))) }
        }
        var iscale = -Float(nmax) / maxValue
        let first = pass(iscale)
        levels(iscale)
        var scale: Float = first.sumL2 != 0 ? first.sumLX / first.sumL2 : 0
        var best = scale * first.sumLX
        for step in -9...9 where step != 0 {
            iscale = -(Float(nmax) + 0.1 * Float(step)) / maxValue
            let r = pass(iscale)
            if r.sumL2 > 0 && r.sumLX * r.sumLX > best * r.sumL2 {
                levels(iscale)
                scale = r.sumLX / r.sumL2
                best = scale * r.sumLX
            }
        }
        return scale
    }

    static func q6_K(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        var L = [UInt8](repeating: 0, count: 256)
        var scales = [Float](repeating: 0, count: 16)
        var maxScale: Float = 0, maxAbsScale: Float = 0
        for ib in 0..<16 {
            var sl = [UInt8](repeating: 0, count: 16)
            let s = symmetricScale(x + 16 * ib, n: 16, nmax: 32, L: &sl)
            for l in 0..<16 { L[16 * ib + l] = sl[l] }
            scales[ib] = s
            if abs(s) > maxAbsScale { maxAbsScale = abs(s); maxScale = s }
        }
        if maxAbsScale < 1e-15 {
            y.initializeMemory(as: UInt8.self, repeating: 0, count: 210)
            return
        }
        let iscale = -128 / maxScale
        Quantizers.storeHalf(1 / iscale, y, 208)
        for ib in 0..<16 {
            y.storeBytes(of: Int8(max(-128, min(127, nearest(iscale * scales[ib])))), toByteOffset: 192 + ib, as: Int8.self)
        }
        let d = BlockCodecs.half(y, 208)
        for j in 0..<16 {
            let dj = d * Float(BlockCodecs.i8(y, 192 + j))
            guard dj != 0 else { continue }
            for i in 0..<16 {
                L[16 * j + i] = UInt8(max(-32, min(31, nearest(x[16 * j + i] / dj))) + 32)
            }
        }
        for j in stride(from: 0, to: 256, by: 128) {
            let ql = j / 2, qh = 128 + j / 4
            for l in 0..<32 {
                let q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF
                y.storeBytes(of: q1 | (q3 << 4), toByteOffset: ql + l, as: UInt8.self)
                y.storeBytes(of: q2 | (q4 << 4), toByteOffset: ql + l + 32, as: UInt8.self)
                let h = (L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6)
                y.storeBytes(of: h, toByteOffset: qh + l, as: UInt8.self)
            }
        }
    }
}
