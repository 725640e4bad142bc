import Foundation

/// Quantisation of F32 rows into ggml blocks.
///
/// F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 follow gguf-py's `quants.py`, operation for
/// operation (including its float64 evaluation of Q4_0/Q5_0, which stands in for the FMA the C
/// reference may use), so the bytes equal `gguf.quants.quantize` exactly. Q4_K, Q5_K and Q6_K
/// follow ggml's `quantize_row_*_ref` (`KQuantizers`); gguf-py cannot quantise them, so they
/// are held to the error profile of ggml's own tests instead. MXFP4 equals gguf-py's quantiser
/// byte for byte; NVFP4 follows ggml's `quantize_row_nvfp4_ref` (gguf-py only decodes it) and
/// is checked against a numpy restatement built on gguf-py's own UE4M3 conversion.
public enum Quantizers {
    public static let supported: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K, .mxfp4, .nvfp4]

    /// Quantises `count` values (whole blocks) of `src` into `dst`, which must hold
    /// `count / blockElements * blockBytes` bytes.
    public static func quantize(_ src: UnsafePointer<Float>, count: Int, as type: GGMLType,
                                into dst: UnsafeMutableRawPointer) throws {
        guard supported.contains(type) else { throw QuantError.notQuantizable(type) }
        let (elements, bytes) = type.blockLayout
        guard count % elements == 0 else { throw QuantError.partialBlock(type: type, elements: count) }
        let block: (UnsafePointer<Float>, UnsafeMutableRawPointer) -> Void
        switch type {
        case .f32: dst.copyMemory(from: src, byteCount: 4 * count); return
        case .f16: block = { x, y in y.storeBytes(of: Float16(x[0]).bitPattern, as: UInt16.self) }
        case .bf16: block = { x, y in y.storeBytes(of: bf16(x[0]), as: UInt16.self) }
        case .q8_0: block = q8_0
        case .q4_0: block = { q4_0or5_0($0, $1, bits: 4) }
        case .q5_0: block = { q4_0or5_0($0, $1, bits: 5) }
        case .q4_1: block = { q4_1or5_1($0, $1, bits: 4) }
        case .q5_1: block = { q4_1or5_1($0, $1, bits: 5) }
        case .q4_K: block = { KQuantizers.q4_K($0, $1) }
        case .q5_K: block = { KQuantizers.q5_K($0, $1) }
        case .q6_K: block = { KQuantizers.q6_K($0, $1) }
        case .mxfp4: block = mxfp4
        case .nvfp4: block = nvfp4
        default: throw QuantError.notQuantizable(type)
        }
        for b in 0..<(count / elements) { block(src + b * elements, dst + b * bytes) }
    }

    /// Quantises an array (convenience for tests and small tensors).
    public static func quantize(_ values: [Float], as type: GGMLType) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count / type.blockElements * type.blockBytes)
        try values.withUnsafeBufferPointer { src in
            try out.withUnsafeMutableBytes { try quantize(src.baseAddress!, count: values.count, as: type, into: $0.baseAddress!) }
        }
        return out
    }

    /// gguf-py's BF16: NaN keeps its sign and top payload bits and is made quiet; everything
    /// else rounds to nearest even.
    @inline(__always) static func bf16(_ x: Float) -> UInt16 {
        let n = x.bitPattern
        if n & 0x7FFF_FFFF > 0x7F80_0000 { return UInt16((n & 0xFFFF_0000 | (64 << 16)) >> 16) }
        return UInt16(truncatingIfNeeded: (UInt64(n) + UInt64(0x7FFF + ((n >> 16) & 1))) >> 16)
    }

    @inline(__always) static func storeHalf(_ v: Float, _ y: UnsafeMutableRawPointer, _ offset: Int) {
        y.storeBytes(of: Float16(v).bitPattern, toByteOffset: offset, as: UInt16.self)
    }

    /// C's `roundf`: halves away from zero (gguf-py `np_roundf`).
    @inline(__always) static func roundHalfAway(_ v: Float) -> Float { v.rounded(.toNearestOrAwayFromZero) }

    static func q8_0(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        var amax: Float = 0
        for j in 0..<32 { amax = max(amax, abs(x[j])) }
        let d = amax / 127
        let id: Float = d == 0 ? 0 : 1 / d
        storeHalf(d, y, 0)
        for j in 0..<32 {
            // NaN inputs (never in a sane checkpoint) become 0 instead of trapping.
            let q = roundHalfAway(x[j] * id)
            y.storeBytes(of: q.isNaN ? 0 : Int8(max(-128, min(127, q))), toByteOffset: 2 + j, as: Int8.self)
        }
    }

    /// Q4_0 (bits 4: d = max/−8, q ∈ 0…15) and Q5_0 (bits 5: d = max/−16, q ∈ 0…31), where
    /// `max` is the signed value of largest magnitude (first one on ties).
    static func q4_0or5_0(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, bits: Int) {
        var maxValue: Float = 0, amax: Float = 0
        for j in 0..<32 where abs(x[j]) > amax { amax = abs(x[j]); maxValue = x[j] }
        let levels = Float(1 << (bits - 1))          // 8 or 16
        let d = maxValue / -levels
        let id: Float = d == 0 ? 0 : 1 / d
        let top = (1 << bits) - 1                     // 15 or 31
        var q = [UInt8](repeating: 0, count: 32)
        for j in 0..<32 {
            // The product rounded to float32, then the offset added in float32, as gguf-py 0.19
            // and ggml's C (without FMA contraction) do: fusing the two moves exact ties.
            let product = x[j] * id
            let v = (product + (levels + 0.5)).rounded(.towardZero)
            q[j] = UInt8(min(Float(top), max(0, v)))
        }
        storeHalf(d, y, 0)
        packLowHigh(q, bits: bits, y, qhOffset: 2, qsOffset: bits == 4 ? 2 : 6)
    }

    /// Q4_1 and Q5_1: d = (max − min)/(2^bits − 1), m = min, q = trunc((x − min)·id + 0.5).
    static func q4_1or5_1(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, bits: Int) {
        var lo = x[0], hi = x[0]
        for j in 1..<32 { lo = min(lo, x[j]); hi = max(hi, x[j]) }
        let top = (1 << bits) - 1
        let d = (hi - lo) / Float(top)
        let id: Float = d == 0 ? 0 : 1 / d
        var q = [UInt8](repeating: 0, count: 32)
        for j in 0..<32 {
            let v = ((x[j] - lo) * id + 0.5).rounded(.towardZero)
            q[j] = UInt8(min(Float(top), max(0, v)))
        }
        storeHalf(d, y, 0)
        storeHalf(lo, y, 2)
        packLowHigh(q, bits: bits, y, qhOffset: 4, qsOffset: bits == 4 ? 4 : 8)
    }

    /// Nibbles: element j in the low half of byte j, element j+16 in the high half; for 5-bit
    /// types the fifth bits go little-endian into the 32-bit `qh`.
    static func packLowHigh(_ q: [UInt8], bits: Int, _ y: UnsafeMutableRawPointer, qhOffset: Int, qsOffset: Int) {
        for j in 0..<16 {
            y.storeBytes(of: (q[j] & 0x0F) | (q[j + 16] << 4), toByteOffset: qsOffset + j, as: UInt8.self)
        }
        if bits == 5 {
            var qh: UInt32 = 0
            for j in 0..<32 { qh |= UInt32(q[j] >> 4) << UInt32(j) }
            y.storeBytes(of: qh.littleEndian, toByteOffset: qhOffset, as: UInt32.self)
        }
    }

    // MARK: - FP4 (E2M1 codes under a shared scale)

    /// The code whose doubled E2M1 value times `d` is nearest `x`; ties go to the lower code
    /// (ggml `best_index_mxfp4`: strict `<`, so +0 wins over −0).
    @inline(__always) static func nearestE2M1(_ x: Float, _ d: Float) -> UInt8 {
        var best = 0
        var bestError = abs(BlockCodecs.e2m1Doubled[0] * d - x)
        for i in 1..<16 {
            let error = abs(BlockCodecs.e2m1Doubled[i] * d - x)
            if error < bestError { best = i; bestError = error }
        }
        return UInt8(best)
    }

    /// MXFP4 (32 values): the E8M0 exponent `floor(log2(amax)) − 2 + 127`, so that the largest
    /// code (6, doubled 12) times the halved scale covers amax; then each value's nearest code.
    /// The exponent is read from amax's bits, which is the exact floor(log2); a block of zeros
    /// (or of magnitudes below 2⁻¹²⁵, beneath E8M0's range) gets e = 0.
    static func mxfp4(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        var amax: Float = 0
        for j in 0..<32 { amax = max(amax, abs(x[j])) }
        let e = amax > 0 && amax.isFinite ? UInt8(clamping: max(0, Int(amax.exponent) - 2 + 127)) : 0
        let d = BlockCodecs.e8m0Half(e)
        y.storeBytes(of: e, as: UInt8.self)
        for j in 0..<16 {
            y.storeBytes(of: nearestE2M1(x[j], d) | nearestE2M1(x[j + 16], d) << 4, toByteOffset: 1 + j, as: UInt8.self)
        }
    }

    /// NVFP4 (64 values, four sub-blocks of 16): each sub-block's scale is amax / 6 rounded
    /// to UE4M3 (`ue4m3`), then each value takes the nearest code under the stored scale.
    static func nvfp4(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        for s in 0..<4 {
            let xs = x + 16 * s
            var amax: Float = 0
            for j in 0..<16 { amax = max(amax, abs(xs[j])) }
            let code = ue4m3(amax / 6)
            let d = BlockCodecs.ue4m3Half(code)
            y.storeBytes(of: code, toByteOffset: s, as: UInt8.self)
            for j in 0..<8 {
                y.storeBytes(of: nearestE2M1(xs[j], d) | nearestE2M1(xs[j + 8], d) << 4, toByteOffset: 4 + 8 * s + j, as: UInt8.self)
            }
        }
    }

    /// ggml's `ggml_fp32_to_ue4m3`: unsigned E4M3 (bias 7, no infinities) of x clamped to
    /// [0, 448], mantissa rounded half up on its fourth bit; 0x7E is the largest code, and
    /// values below the normal range become subnormal codes (x·512 rounded half up, at most 7).
    static func ue4m3(_ value: Float) -> UInt8 {
        guard value > 0 else { return 0 }  // also NaN
        let x = min(value, 448)
        let bits = x.bitPattern
        let exponent = Int((bits >> 23) & 0xFF) - 127 + 7
        if exponent <= 0 {
            return UInt8(min(7, max(0, Int(x * 512 + 0.5))))
        }
        if exponent >= 15 { return 0x7E }
        var mantissa = Int((bits >> 20) & 7) + Int((bits >> 19) & 1)
        var e = exponent
        if mantissa > 7 { mantissa = 0; e += 1 }
        return e >= 15 ? 0x7E : UInt8(e << 3 | mantissa)
    }
}
