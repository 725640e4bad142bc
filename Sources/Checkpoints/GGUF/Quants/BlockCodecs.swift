/// Dequantisation of ggml blocks to F32: one loop per type, written like ggml-quants.c's
/// `dequantize_row_*` (same field offsets, same order of float operations, so results equal
/// ggml's and gguf-py's bit for bit). `NaiveDecoders` holds a per-element decoder for each
/// type, derived from the formulas alone; tests hold the two against each other.
///
/// Field offsets of each block are in formats.md §2.6; `d`, `m` and `dmin` are fp16.
public enum BlockCodecs {

    /// Dequantises `count` elements (whole blocks) of `type` from `src` into `dst`.
    public static func dequantize(_ type: GGMLType, from src: UnsafeRawPointer, count: Int,
                                  into dst: UnsafeMutablePointer<Float>) throws {
        if let plain = type.plainType {
            try ElementConversion.decode(plain, from: src, count: count, into: dst)
            return
        }
        let (elements, bytes) = type.blockLayout
        guard count % elements == 0 else { throw QuantError.partialBlock(type: type, elements: count) }
        let blockDecoder = try decoder(for: type)
        for b in 0..<(count / elements) {
            blockDecoder(src + b * bytes, dst + b * elements)
        }
    }

    typealias BlockDecoder = (UnsafeRawPointer, UnsafeMutablePointer<Float>) -> Void

    static func decoder(for type: GGMLType) throws -> BlockDecoder {
        switch type {
        case .q4_0: return q4_0
        case .q4_1: return q4_1
        case .q5_0: return q5_0
        case .q5_1: return q5_1
        case .q8_0: return q8_0
        case .q8_1: return q8_1
        case .q2_K: return q2_K
        case .q3_K: return q3_K
        case .q4_K: return q4_K
        case .q5_K: return q5_K
        case .q6_K: return q6_K
        case .q8_K: return q8_K
        case .tq1_0: return tq1_0
        case .tq2_0: return tq2_0
        case .mxfp4: return mxfp4
        case .nvfp4: return nvfp4
        case .iq4_NL: return iq4_nl
        case .iq4_XS: return iq4_xs
        case .iq2_XXS: return IQDecoders.iq2_xxs
        case .iq2_XS: return IQDecoders.iq2_xs
        case .iq2_S: return IQDecoders.iq2_s
        case .iq3_XXS: return IQDecoders.iq3_xxs
        case .iq3_S: return IQDecoders.iq3_s
        case .iq1_S: return IQDecoders.iq1_s
        case .iq1_M: return IQDecoders.iq1_m
        case .q1_0, .q2_0, .f32, .f16, .bf16, .f64, .i8, .i16, .i32, .i64:
            throw QuantError.notDecodable(type)
        }
    }

    // MARK: - Field readers

    @inline(__always) static func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
        Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    }
    @inline(__always) static func u8(_ p: UnsafeRawPointer, _ offset: Int) -> UInt8 { p.load(fromByteOffset: offset, as: UInt8.self) }
    @inline(__always) static func i8(_ p: UnsafeRawPointer, _ offset: Int) -> Int8 { p.load(fromByteOffset: offset, as: Int8.self) }
    @inline(__always) static func u16(_ p: UnsafeRawPointer, _ offset: Int) -> UInt16 { p.loadUnaligned(fromByteOffset: offset, as: UInt16.self) }
    @inline(__always) static func u32(_ p: UnsafeRawPointer, _ offset: Int) -> UInt32 { p.loadUnaligned(fromByteOffset: offset, as: UInt32.self) }

    /// The 6-bit scale and min `j` of a Q4_K/Q5_K block (ggml `get_scale_min_k4`).
    @inline(__always) static func scaleMinK4(_ j: Int, _ q: UnsafeRawPointer) -> (UInt8, UInt8) {
        if j < 4 {
            return (u8(q, j) & 63, u8(q, j + 4) & 63)
        }
        return ((u8(q, j + 4) & 0xF) | ((u8(q, j - 4) >> 6) << 4),
                (u8(q, j + 4) >> 4) | ((u8(q, j) >> 6) << 4))
    }

    /// The 16 signed 6-bit scales of a Q3_K block (bytes 96..107), `raw − 32`.
    @inline(__always) static func q3kScales(_ b: UnsafeRawPointer) -> [Int8] {
        var s = [Int8](repeating: 0, count: 16)
        for k in 0..<4 {
            let hi = u8(b, 8 + k)
            s[k] = Int8(Int((u8(b, k) & 0xF) | ((hi >> 0) & 3) << 4) - 32)
            s[4 + k] = Int8(Int((u8(b, 4 + k) & 0xF) | ((hi >> 2) & 3) << 4) - 32)
            s[8 + k] = Int8(Int((u8(b, k) >> 4) | ((hi >> 4) & 3) << 4) - 32)
            s[12 + k] = Int8(Int((u8(b, 4 + k) >> 4) | ((hi >> 6) & 3) << 4) - 32)
        }
        return s
    }

    /// The MXFP4/NVFP4 element values: E2M1 doubled (ggml `kvalues_mxfp4`).
    static let e2m1Doubled: [Float] = IQTables.kvaluesMXFP4.map(Float.init)

    /// IQ4_NL / IQ4_XS non-linear 4-bit values (ggml `kvalues_iq4nl`).
    static let iq4nlValues: [Float] = IQTables.kvaluesIQ4NL.map(Float.init)

    /// MXFP4's shared exponent as the halved scale `2^(e − 128)` (ggml `e8m0_to_fp32_half`).
    @inline(__always) static func e8m0Half(_ e: UInt8) -> Float {
        e < 2 ? Float(bitPattern: UInt32(0x0020_0000) << UInt32(e)) : Float(bitPattern: (UInt32(e) - 1) << 23)
    }

    /// NVFP4's per-16 scale: unsigned E4M3, halved; codes 0 and 0x7F read as 0
    /// (ggml `ggml_ue4m3_to_fp32`).
    @inline(__always) static func ue4m3Half(_ x: UInt8) -> Float {
        if x == 0 || x == 0x7F { return 0 }
        let exponent = Int((x >> 3) & 0xF), mantissa = Float(x & 7)
        let raw = exponent == 0 ? mantissa * Float(sign: .plus, exponent: -9, significand: 1)
                                : (1 + mantissa / 8) * Float(sign: .plus, exponent: exponent - 7, significand: 1)
        return raw * 0.5
    }

    // MARK: - 32-element blocks

    static func q4_0(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(x, 0)
        for j in 0..<16 {
            let q = u8(x, 2 + j)
            y[j] = Float(Int(q & 0xF) - 8) * d
            y[j + 16] = Float(Int(q >> 4) - 8) * d
        }
    }

    static func q4_1(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(x, 0), m = half(x, 2)
        for j in 0..<16 {
            let q = u8(x, 4 + j)
            y[j] = Float(q & 0xF) * d + m
            y[j + 16] = Float(q >> 4) * d + m
        }
    }

    static func q5_0(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(x, 0), h = u32(x, 2)
        for j in 0..<16 {
            let q = u8(x, 6 + j)
            let lo = Int(q & 0xF) | Int((h >> UInt32(j)) & 1) << 4
            let hi = Int(q >> 4) | Int((h >> UInt32(j + 16)) & 1) << 4
            y[j] = Float(lo - 16) * d
            y[j + 16] = Float(hi - 16) * d
        }
    }

    static func q5_1(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(x, 0), m = half(x, 2), h = u32(x, 4)
        for j in 0..<16 {
            let q = u8(x, 8 + j)
            let lo = Int(q & 0xF) | Int((h >> UInt32(j)) & 1) << 4
            let hi = Int(q >> 4) | Int((h >> UInt32(j + 16)) & 1) << 4
            y[j] = Float(lo) * d + m
            y[j + 16] = Float(hi) * d + m
        }
    }

    static func q8_0(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(x, 0)
        for j in 0..<32 { y[j] = Float(i8(x, 2 + j)) * d }
    }

    static func q8_1(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(x, 0)
        for j in 0..<32 { y[j] = Float(i8(x, 4 + j)) * d }
    }

    static func iq4_nl(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(x, 0)
        for j in 0..<16 {
            let q = u8(x, 2 + j)
            y[j] = d * iq4nlValues[Int(q & 0xF)]
            y[j + 16] = d * iq4nlValues[Int(q >> 4)]
        }
    }

    static func mxfp4(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = e8m0Half(u8(x, 0))
        for j in 0..<16 {
            let q = u8(x, 1 + j)
            y[j] = e2m1Doubled[Int(q & 0xF)] * d
            y[j + 16] = e2m1Doubled[Int(q >> 4)] * d
        }
    }

    // MARK: - 64-element blocks

    static func nvfp4(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        for s in 0..<4 {
            let d = ue4m3Half(u8(x, s))
            for j in 0..<8 {
                let q = u8(x, 4 + 8 * s + j)
                y[16 * s + j] = e2m1Doubled[Int(q & 0xF)] * d
                y[16 * s + j + 8] = e2m1Doubled[Int(q >> 4)] * d
            }
        }
    }

    // MARK: - 256-element super-blocks

    static func q2_K(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(x, 80), dmin = half(x, 82)
        var out = 0, scaleIndex = 0
        for n in 0..<2 {
            let q = 16 + 32 * n
            for j in 0..<4 {
                let shift = UInt8(2 * j)
                for half16 in 0..<2 {
                    let sc = u8(x, scaleIndex); scaleIndex += 1
                    let dl = d * Float(sc & 0xF), ml = dmin * Float(sc >> 4)
                    for l in 0..<16 {
                        y[out] = dl * Float((u8(x, q + 16 * half16 + l) >> shift) & 3) - ml
                        out += 1
                    }
                }
            }
        }
    }

    static func q3_K(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(x, 108)
        let scales = q3kScales(x + 96)
        var out = 0, scaleIndex = 0
        var m: UInt8 = 1
        for n in 0..<2 {
            let q = 32 + 32 * n
            for j in 0..<4 {
                let shift = UInt8(2 * j)
                for half16 in 0..<2 {
                    let dl = d * Float(scales[scaleIndex]); scaleIndex += 1
                    for l in 0..<16 {
                        let low = Int((u8(x, q + 16 * half16 + l) >> shift) & 3)
                        let high = (u8(x, 16 * half16 + l) & m) != 0 ? 0 : 4
                        y[out] = dl * Float(low - high)
                        out += 1
                    }
                }
                m <<= 1
            }
        }
    }

    static func q4_K(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(x, 0), dmin = half(x, 2)
        let scales = x + 4
        for j in 0..<4 {
            let (sc1, m1) = scaleMinK4(2 * j, scales), (sc2, m2) = scaleMinK4(2 * j + 1, scales)
            let d1 = d * Float(sc1), min1 = dmin * Float(m1)
            let d2 = d * Float(sc2), min2 = dmin * Float(m2)
            for l in 0..<32 {
                let q = u8(x, 16 + 32 * j + l)
                y[64 * j + l] = d1 * Float(q & 0xF) - min1
                y[64 * j + 32 + l] = d2 * Float(q >> 4) - min2
            }
        }
    }

    static func q5_K(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(x, 0), dmin = half(x, 2)
        let scales = x + 4
        for j in 0..<4 {
            let (sc1, m1) = scaleMinK4(2 * j, scales), (sc2, m2) = scaleMinK4(2 * j + 1, scales)
            let d1 = d * Float(sc1), min1 = dmin * Float(m1)
            let d2 = d * Float(sc2), min2 = dmin * Float(m2)
            let u1 = UInt8(1) << UInt8(2 * j), u2 = UInt8(2) << UInt8(2 * j)
            for l in 0..<32 {
                let q = u8(x, 48 + 32 * j + l), h = u8(x, 16 + l)
                y[64 * j + l] = d1 * Float(Int(q & 0xF) + ((h & u1) != 0 ? 16 : 0)) - min1
                y[64 * j + 32 + l] = d2 * Float(Int(q >> 4) + ((h & u2) != 0 ? 16 : 0)) - min2
            }
        }
    }

    static func q6_K(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(x, 208)
        for n in 0..<2 {
            let ql = 64 * n, qh = 128 + 32 * n, sc = 192 + 8 * n, out = 128 * n
            for l in 0..<32 {
                let i = l / 16
                let L0 = u8(x, ql + l), L32 = u8(x, ql + l + 32), H = u8(x, qh + l)
                let q1 = Int((L0 & 0xF) | ((H >> 0) & 3) << 4) - 32
                let q2 = Int((L32 & 0xF) | ((H >> 2) & 3) << 4) - 32
                let q3 = Int((L0 >> 4) | ((H >> 4) & 3) << 4) - 32
                let q4 = Int((L32 >> 4) | ((H >> 6) & 3) << 4) - 32
                y[out + l] = d * Float(i8(x, sc + i)) * Float(q1)
                y[out + l + 32] = d * Float(i8(x, sc + i + 2)) * Float(q2)
                y[out + l + 64] = d * Float(i8(x, sc + i + 4)) * Float(q3)
                y[out + l + 96] = d * Float(i8(x, sc + i + 6)) * Float(q4)
            }
        }
    }

    static func q8_K(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = x.loadUnaligned(fromByteOffset: 0, as: Float.self)
        for j in 0..<256 { y[j] = d * Float(i8(x, 4 + j)) }
    }

    static func iq4_xs(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(x, 0), scalesHigh = u16(x, 2)
        for ib in 0..<8 {
            let low = (u8(x, 4 + ib / 2) >> UInt8(4 * (ib % 2))) & 0xF
            let ls = Int(low) | Int((scalesHigh >> UInt16(2 * ib)) & 3) << 4
            let dl = d * Float(ls - 32)
            for j in 0..<16 {
                let q = u8(x, 8 + 16 * ib + j)
                y[32 * ib + j] = dl * iq4nlValues[Int(q & 0xF)]
                y[32 * ib + j + 16] = dl * iq4nlValues[Int(q >> 4)]
            }
        }
    }

    static func tq2_0(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(x, 64)
        var out = 0
        for j in stride(from: 0, to: 64, by: 32) {
            for l in 0..<4 {
                for m in 0..<32 {
                    let q = Int((u8(x, j + m) >> UInt8(2 * l)) & 3)
                    y[out] = Float(q - 1) * d
                    out += 1
                }
            }
        }
    }

    /// Ternary digit `n` of a base-3 packed byte (ggml: `((uint8)(b·3ⁿ) · 3) >> 8`).
    @inline(__always) static func trit(_ b: UInt8, _ n: Int) -> Int {
        let pow3: [UInt8] = [1, 3, 9, 27, 81, 243]
        let q = b &* pow3[n]
        return Int((UInt16(q) * 3) >> 8)
    }

    static func tq1_0(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(x, 52)
        var out = 0
        for (start, width) in [(0, 32), (32, 16)] {
            for n in 0..<5 {
                for m in 0..<width {
                    y[out] = Float(trit(u8(x, start + m), n) - 1) * d
                    out += 1
                }
            }
        }
        for n in 0..<4 {
            for j in 0..<4 {
                y[out] = Float(trit(u8(x, 48 + j), n) - 1) * d
                out += 1
            }
        }
    }
}

/// Quantisation and block-format errors, each naming the type.
public enum QuantError: Error, CustomStringConvertible, Equatable {
    case notDecodable(GGMLType)
    case notQuantizable(GGMLType)
    case partialBlock(type: GGMLType, elements: Int)
    case cannotScale(type: GGMLType, reason: String)

    public var description: String {
        switch self {
        case .notDecodable(let t):
            return "nopekit cannot dequantise \(t.name) blocks (no reference decoder to check against); convert the model with llama.cpp to another type first"
        case .notQuantizable(let t):
            return "nopekit cannot quantise to \(t.name); supported: \(Quantizers.supported.map(\.name).joined(separator: ", "))"
        case .partialBlock(let t, let n):
            return "\(n) elements are not whole \(t.name) blocks of \(t.blockElements)"
        case .cannotScale(let t, let r):
            return "cannot scale a \(t.name) row in place: \(r)"
        }
    }
}
