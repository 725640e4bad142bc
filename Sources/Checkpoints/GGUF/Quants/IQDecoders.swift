/// Dequantisation of the lattice ("IQ") types, whose codes index shared grids
/// (`IQTables`, generated from gguf-py). Each follows ggml's `dequantize_row_iq*`; the
/// per-element `naiveElement` recomputes the same values from the element index alone.
enum IQDecoders {
    typealias B = BlockCodecs

    static let iq1Delta = IQTables.iq1Delta

    @inline(__always) static func sign(_ signs: UInt8, _ j: Int) -> Float { (signs >> UInt8(j)) & 1 == 1 ? -1 : 1 }

    // IQ2_XXS (66 B): d; qs[32] as 8 pairs of u32: aux0 = 4 grid indices, aux1 = 4×7 sign
    // indices + a 4-bit scale in the top bits.
    static func iq2_xxs(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = B.half(x, 0)
        for ib in 0..<8 {
            let aux0 = B.u32(x, 2 + 8 * ib), aux1 = B.u32(x, 6 + 8 * ib)
            let db = d * (0.5 + Float(aux1 >> 28)) * 0.25
            for l in 0..<4 {
                let grid = Int((aux0 >> UInt32(8 * l)) & 0xFF) * 8
                let signs = IQTables.ksigns[Int((aux1 >> UInt32(7 * l)) & 127)]
                for j in 0..<8 { y[32 * ib + 8 * l + j] = db * Float(IQTables.iq2xxsGrid[grid + j]) * sign(signs, j) }
            }
        }
    }

    // IQ2_XS (74 B): d; qs[32] u16 (9-bit grid index, 7-bit sign index); scales[8] (two 4-bit).
    static func iq2_xs(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = B.half(x, 0)
        for ib in 0..<8 {
            let s = B.u8(x, 66 + ib)
            let db = [d * (0.5 + Float(s & 0xF)) * 0.25, d * (0.5 + Float(s >> 4)) * 0.25]
            for l in 0..<4 {
                let q = B.u16(x, 2 + 2 * (4 * ib + l))
                let grid = Int(q & 511) * 8
                let signs = IQTables.ksigns[Int(q >> 9)]
                for j in 0..<8 { y[32 * ib + 8 * l + j] = db[l / 2] * Float(IQTables.iq2xsGrid[grid + j]) * sign(signs, j) }
            }
        }
    }

    // IQ2_S (82 B): d; qs[32] grid low bits; signs[32]; qh[8] grid high bits; scales[8].
    static func iq2_s(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = B.half(x, 0)
        for ib in 0..<8 {
            let s = B.u8(x, 74 + ib)
            let db = [d * (0.5 + Float(s & 0xF)) * 0.25, d * (0.5 + Float(s >> 4)) * 0.25]
            let qh = Int(B.u8(x, 66 + ib))
            for l in 0..<4 {
                let index = Int(B.u8(x, 2 + 4 * ib + l)) | ((qh << (8 - 2 * l)) & 0x300)
                let signs = B.u8(x, 34 + 4 * ib + l)
                for j in 0..<8 { y[32 * ib + 8 * l + j] = db[l / 2] * Float(IQTables.iq2sGrid[8 * index + j]) * sign(signs, j) }
            }
        }
    }

    // IQ3_XXS (98 B): d; qs[64] grid indices (4 values each); 8 × u32 scales-and-signs.
    static func iq3_xxs(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = B.half(x, 0)
        for ib in 0..<8 {
            let aux = B.u32(x, 66 + 4 * ib)
            let db = d * (0.5 + Float(aux >> 28)) * 0.5
            for l in 0..<4 {
                let signs = IQTables.ksigns[Int((aux >> UInt32(7 * l)) & 127)]
                let g1 = Int(B.u8(x, 2 + 8 * ib + 2 * l)) * 4, g2 = Int(B.u8(x, 2 + 8 * ib + 2 * l + 1)) * 4
                for j in 0..<4 {
                    y[32 * ib + 8 * l + j] = db * Float(IQTables.iq3xxsGrid[g1 + j]) * sign(signs, j)
                    y[32 * ib + 8 * l + j + 4] = db * Float(IQTables.iq3xxsGrid[g2 + j]) * sign(signs, j + 4)
                }
            }
        }
    }

    // IQ3_S (110 B): d; qs[64]; qh[8]; signs[32]; scales[4] (two 4-bit, odd scales 1…31).
    static func iq3_s(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = B.half(x, 0)
        for ib in 0..<8 {
            let s = B.u8(x, 106 + ib / 2)
            let db = d * Float(1 + 2 * Int(ib % 2 == 0 ? s & 0xF : s >> 4))
            let qh = Int(B.u8(x, 66 + ib))
            for l in 0..<4 {
                let i1 = Int(B.u8(x, 2 + 8 * ib + 2 * l)) | ((qh << (8 - 2 * l)) & 256)
                let i2 = Int(B.u8(x, 2 + 8 * ib + 2 * l + 1)) | ((qh << (7 - 2 * l)) & 256)
                let signs = B.u8(x, 74 + 4 * ib + l)
                for j in 0..<4 {
                    y[32 * ib + 8 * l + j] = db * Float(IQTables.iq3sGrid[4 * i1 + j]) * sign(signs, j)
                    y[32 * ib + 8 * l + j + 4] = db * Float(IQTables.iq3sGrid[4 * i2 + j]) * sign(signs, j + 4)
                }
            }
        }
    }

    // IQ1_S (50 B): d; qs[32] grid low bits; qh[8] u16 (3 high bits per group, 3-bit scale, delta sign).
    static func iq1_s(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = B.half(x, 0)
        for ib in 0..<8 {
            let qh = Int(B.u16(x, 34 + 2 * ib))
            let dl = d * Float(2 * ((qh >> 12) & 7) + 1)
            let delta = qh & 0x8000 != 0 ? -iq1Delta : iq1Delta
            for l in 0..<4 {
                let index = Int(B.u8(x, 2 + 4 * ib + l)) | (((qh >> (3 * l)) & 7) << 8)
                for j in 0..<8 { y[32 * ib + 8 * l + j] = dl * (Float(IQTables.iq1sGrid[8 * index + j]) + delta) }
            }
        }
    }

    /// IQ1_M's fp16 super-scale, split into the top nibbles of its four u16 scale words.
    @inline(__always) static func iq1mScale(_ x: UnsafeRawPointer) -> Float {
        let s = (0..<4).map { B.u16(x, 48 + 2 * $0) }
        let bits = (s[0] >> 12) | ((s[1] >> 8) & 0x00F0) | ((s[2] >> 4) & 0x0F00) | (s[3] & 0xF000)
        return Float(Float16(bitPattern: bits))
    }

    // IQ1_M (56 B): qs[32]; qh[16] (high index bits + delta signs per 8); scales[8] (3-bit
    // scales per 16, plus the split super-scale).
    static func iq1_m(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = iq1mScale(x)
        for ib in 0..<8 {
            let sc = Int(B.u16(x, 48 + 2 * (ib / 2)))
            let shift = 6 * (ib % 2)
            let dl = [d * Float(2 * ((sc >> shift) & 7) + 1), d * Float(2 * ((sc >> (shift + 3)) & 7) + 1)]
            let qh0 = Int(B.u8(x, 32 + 2 * ib)), qh1 = Int(B.u8(x, 33 + 2 * ib))
            let index = [Int(B.u8(x, 4 * ib)) | ((qh0 << 8) & 0x700), Int(B.u8(x, 4 * ib + 1)) | ((qh0 << 4) & 0x700),
                         Int(B.u8(x, 4 * ib + 2)) | ((qh1 << 8) & 0x700), Int(B.u8(x, 4 * ib + 3)) | ((qh1 << 4) & 0x700)]
            let delta = [qh0 & 0x08 != 0 ? -iq1Delta : iq1Delta, qh0 & 0x80 != 0 ? -iq1Delta : iq1Delta,
                         qh1 & 0x08 != 0 ? -iq1Delta : iq1Delta, qh1 & 0x80 != 0 ? -iq1Delta : iq1Delta]
            for l in 0..<4 {
                for j in 0..<8 {
                    y[32 * ib + 8 * l + j] = dl[l / 2] * (Float(IQTables.iq1sGrid[8 * index[l] + j]) + delta[l])
                }
            }
        }
    }

    /// Element `k` of an IQ block: decode the 32-element group holding it and pick it out.
    /// The group decode is written independently of the block loops above (index arithmetic
    /// straight from the layout), so the tests compare two derivations.
    static func naiveElement(_ type: GGMLType, _ x: UnsafeRawPointer, _ k: Int) -> Float? {
        let ib = k / 32, l = (k % 32) / 8, j = k % 8
        switch type {
        case .iq2_XXS:
            let aux0 = B.u32(x, 2 + 8 * ib), aux1 = B.u32(x, 6 + 8 * ib)
            let index = Int((aux0 >> UInt32(8 * l)) & 0xFF)
            let signs = IQTables.ksigns[Int((aux1 >> UInt32(7 * l)) & 127)]
            return B.half(x, 0) * (0.5 + Float(aux1 >> 28)) * 0.25 * Float(IQTables.iq2xxsGrid[8 * index + j]) * sign(signs, j)
        case .iq2_XS:
            let q = B.u16(x, 2 + 8 * ib + 2 * l)
            let s = B.u8(x, 66 + ib)
            let scale = l < 2 ? s & 0xF : s >> 4
            return B.half(x, 0) * (0.5 + Float(scale)) * 0.25 * Float(IQTables.iq2xsGrid[8 * Int(q & 511) + j]) * sign(IQTables.ksigns[Int(q >> 9)], j)
        case .iq2_S:
            let high = (Int(B.u8(x, 66 + ib)) >> (2 * l)) & 3
            let index = Int(B.u8(x, 2 + 4 * ib + l)) + 256 * high
            let s = B.u8(x, 74 + ib)
            let scale = l < 2 ? s & 0xF : s >> 4
            return B.half(x, 0) * (0.5 + Float(scale)) * 0.25 * Float(IQTables.iq2sGrid[8 * index + j]) * sign(B.u8(x, 34 + 4 * ib + l), j)
        case .iq3_XXS:
            let aux = B.u32(x, 66 + 4 * ib)
            let index = Int(B.u8(x, 2 + 8 * ib + 2 * l + j / 4))
            let signs = IQTables.ksigns[Int((aux >> UInt32(7 * l)) & 127)]
            return B.half(x, 0) * (0.5 + Float(aux >> 28)) * 0.5 * Float(IQTables.iq3xxsGrid[4 * index + j % 4]) * sign(signs, j)
        case .iq3_S:
            let half = j / 4  // which of the two 4-value grid entries
            let high = (Int(B.u8(x, 66 + ib)) >> (2 * l + half)) & 1
            let index = Int(B.u8(x, 2 + 8 * ib + 2 * l + half)) + 256 * high
            let s = B.u8(x, 106 + ib / 2)
            let scale = 1 + 2 * Int(ib % 2 == 0 ? s & 0xF : s >> 4)
            return B.half(x, 0) * Float(scale) * Float(IQTables.iq3sGrid[4 * index + j % 4]) * sign(B.u8(x, 74 + 4 * ib + l), j)
        case .iq1_S:
            let qh = Int(B.u16(x, 34 + 2 * ib))
            let index = Int(B.u8(x, 2 + 4 * ib + l)) + 256 * ((qh >> (3 * l)) & 7)
            let delta = (qh >> 15) & 1 == 1 ? -iq1Delta : iq1Delta
            return B.half(x, 0) * Float(2 * ((qh >> 12) & 7) + 1) * (Float(IQTables.iq1sGrid[8 * index + j]) + delta)
        case .iq1_M:
            let qhByte = Int(B.u8(x, 32 + 2 * ib + l / 2))
            let highBits = l % 2 == 0 ? qhByte & 7 : (qhByte >> 4) & 7
            let index = Int(B.u8(x, 4 * ib + l)) + 256 * highBits
            let deltaBit = l % 2 == 0 ? qhByte & 0x08 : qhByte & 0x80
            let delta = deltaBit != 0 ? -iq1Delta : iq1Delta
            let sc = Int(B.u16(x, 48 + 2 * (ib / 2)))
            let scale = (sc >> (6 * (ib % 2) + 3 * (l / 2))) & 7
            return iq1mScale(x) * Float(2 * scale + 1) * (Float(IQTables.iq1sGrid[8 * index + j]) + delta)
        default:
            return nil
        }
    }
}
