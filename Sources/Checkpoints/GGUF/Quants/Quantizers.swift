import Foundation

/// Quantisation of F32 rows into ggml blocks.
///
/// F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 follow gguf-py's `quants.py`, operation for
/// operation (including its float64 evaluation of Q4_0/Q5_0, which stands in for the FMA the C
/// reference may use), so the bytes equal `gguf.quants.quantize` exactly. Q4_K, Q5_K and Q6_K
/// follow ggml's `quantize_row_*_ref` (`KQuantizers`); gguf-py cannot quantise them, so they
/// are held to the error profile of ggml's own tests instead.
public enum Quantizers {
    public static let supported: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K]

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
}
