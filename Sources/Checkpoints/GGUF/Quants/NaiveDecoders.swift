/// Reference decoders: element `k` of a block, computed directly from the layout formulas of
/// formats.md §2.6, one element at a time, with no loop structure shared with `BlockCodecs`.
/// They are slow on purpose; the tests check the fast decoders against them on random blocks.
public enum NaiveDecoders {
    typealias B = BlockCodecs

    /// Element `k` of the block at `x`, or nil for a type without a naive decoder.
    public static func element(_ type: GGMLType, _ x: UnsafeRawPointer, _ k: Int) -> Float? {
        switch type {
        case .q4_0:
            let q = B.u8(x, 2 + k % 16)
            return Float(Int(k < 16 ? q & 0xF : q >> 4) - 8) * B.half(x, 0)
        case .q4_1:
            let q = B.u8(x, 4 + k % 16)
            return Float(k < 16 ? q & 0xF : q >> 4) * B.half(x, 0) + B.half(x, 2)
        case .q5_0, .q5_1:
            let base = type == .q5_0 ? 6 : 8
            let h = B.u32(x, type == .q5_0 ? 2 : 4)
            let nibble = k < 16 ? B.u8(x, base + k) & 0xF : B.u8(x, base + k - 16) >> 4
            let q = Int(nibble) | Int((h >> UInt32(k)) & 1) << 4
            return type == .q5_0 ? Float(q - 16) * B.half(x, 0) : Float(q) * B.half(x, 0) + B.half(x, 2)
        case .q8_0: return Float(B.i8(x, 2 + k)) * B.half(x, 0)
        case .q8_1: return Float(B.i8(x, 4 + k)) * B.half(x, 0)
        case .q2_K:
            // k = 128h + 32j + 16s + l
            let h = k / 128, j = (k % 128) / 32, s = (k % 32) / 16, l = k % 16
            let q = (B.u8(x, 16 + 32 * h + 16 * s + l) >> UInt8(2 * j)) & 3
            let sc = B.u8(x, 8 * h + 2 * j + s)
            return B.half(x, 80) * Float(sc & 0xF) * Float(q) - B.half(x, 82) * Float(sc >> 4)
        case .q3_K:
            let h = k / 128, j = (k % 128) / 32, s = (k % 32) / 16, l = k % 16
            let q = Int((B.u8(x, 32 + 32 * h + 16 * s + l) >> UInt8(2 * j)) & 3)
            let high = (B.u8(x, 16 * s + l) >> UInt8(4 * h + j)) & 1
            let scale = B.q3kScales(x + 96)[8 * h + 2 * j + s]
            return B.half(x, 108) * Float(scale) * Float(q - (high == 1 ? 0 : 4))
        case .q4_K, .q5_K:
            // Sub-block i = k / 32 uses scale/min pair i; sub-blocks 2j and 2j+1 share qs bytes.
            let i = k / 32, j = i / 2, l = k % 32
            let qsBase = type == .q4_K ? 16 : 48
            let byte = B.u8(x, qsBase + 32 * j + l)
            var q = Int(i % 2 == 0 ? byte & 0xF : byte >> 4)
            if type == .q5_K { q += Int((B.u8(x, 16 + l) >> UInt8(i)) & 1) * 16 }
            let (sc, m) = B.scaleMinK4(i, x + 4)
            return B.half(x, 0) * Float(sc) * Float(q) - B.half(x, 2) * Float(m)
        case .q6_K:
            // k = 128n + 32r + l: r picks the nibble (low/high) and the ql half.
            let n = k / 128, r = (k % 128) / 32, l = k % 32
            let lowByte = B.u8(x, 64 * n + l + (r % 2 == 1 ? 32 : 0))
            let nibble = r < 2 ? lowByte & 0xF : lowByte >> 4
            let highBits = (B.u8(x, 128 + 32 * n + l) >> UInt8(2 * r)) & 3
            let q = Int(nibble | highBits << 4) - 32
            let scale = B.i8(x, 192 + 8 * n + l / 16 + 2 * r)
            return B.half(x, 208) * Float(scale) * Float(q)
        case .q8_K: return x.loadUnaligned(fromByteOffset: 0, as: Float.self) * Float(B.i8(x, 4 + k))
        case .tq2_0:
            // k = 128c + 32p + m
            let c = k / 128, p = (k % 128) / 32, m = k % 32
            return Float(Int((B.u8(x, 32 * c + m) >> UInt8(2 * p)) & 3) - 1) * B.half(x, 64)
        case .tq1_0:
            let trit: Int
            if k < 160 { trit = B.trit(B.u8(x, k % 32), k / 32) }
            else if k < 240 { trit = B.trit(B.u8(x, 32 + (k - 160) % 16), (k - 160) / 16) }
            else { trit = B.trit(B.u8(x, 48 + (k - 240) % 4), (k - 240) / 4) }
            return Float(trit - 1) * B.half(x, 52)
        case .mxfp4:
            let q = B.u8(x, 1 + k % 16)
            return B.e2m1Doubled[Int(k < 16 ? q & 0xF : q >> 4)] * B.e8m0Half(B.u8(x, 0))
        case .nvfp4:
            let s = k / 16, j = k % 16
            let q = B.u8(x, 4 + 8 * s + j % 8)
            return B.e2m1Doubled[Int(j < 8 ? q & 0xF : q >> 4)] * B.ue4m3Half(B.u8(x, s))
        case .iq4_NL:
            let q = B.u8(x, 2 + k % 16)
            return B.half(x, 0) * B.iq4nlValues[Int(k < 16 ? q & 0xF : q >> 4)]
        case .iq4_XS:
            let ib = k / 32, j = k % 32
            let low = (B.u8(x, 4 + ib / 2) >> UInt8(4 * (ib % 2))) & 0xF
            let ls = Int(low) | Int((B.u16(x, 2) >> UInt16(2 * ib)) & 3) << 4
            let q = B.u8(x, 8 + 16 * ib + j % 16)
            return B.half(x, 0) * Float(ls - 32) * B.iq4nlValues[Int(j < 16 ? q & 0xF : q >> 4)]
        default:
            return IQDecoders.naiveElement(type, x, k)
        }
    }
}
