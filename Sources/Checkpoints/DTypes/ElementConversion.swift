/// Widening of any stored element type to F32, and narrowing of F32 to the types nopekit writes.
///
/// Rounding is round-to-nearest-even everywhere, as numpy/ml_dtypes and PyTorch do, so a
/// re-typed checkpoint equals what `tensor.to(torch.bfloat16)` would have written. F64 is first
/// rounded to F32 (the engine's working type) and then to the target.
public enum ElementConversion {

    // MARK: - Single values (the reference definitions; the bulk loops below call these)

    /// BF16 is the top half of an F32: widening is exact.
    @inline(__always)
    public static func bf16ToF32(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    /// F32 → BF16, round to nearest even. NaN becomes the canonical quiet NaN with its sign kept
    /// (0x7FC0 / 0xFFC0), as Eigen and ml_dtypes do.
    @inline(__always)
    public static func f32ToBF16(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return (bits >> 31) != 0 ? 0xFFC0 : 0x7FC0 }
        let rounding = UInt32(0x7FFF) + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    @inline(__always)
    public static func f16ToF32(_ bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }

    /// F32 → F16 with IEEE round-to-nearest-even (overflow to ±inf, gradual underflow).
    @inline(__always)
    public static func f32ToF16(_ x: Float) -> UInt16 { Float16(x).bitPattern }

    /// The 8-bit float formats, decoded through a 256-entry table each (built once).
    public static func f8ToF32(_ dtype: DType, _ byte: UInt8) -> Float {
        switch dtype {
        case .f8e4m3: return f8Tables.e4m3[Int(byte)]
        case .f8e5m2: return f8Tables.e5m2[Int(byte)]
        case .f8e8m0: return f8Tables.e8m0[Int(byte)]
        case .f8e4m3fnuz: return f8Tables.e4m3fnuz[Int(byte)]
        case .f8e5m2fnuz: return f8Tables.e5m2fnuz[Int(byte)]
        default: preconditionFailure("\(dtype) is not an 8-bit float type")
        }
    }

    /// Decodes one 8-bit float from its fields. `bias` is the exponent bias; `ieeeSpecials`
    /// means the all-ones exponent holds inf/NaN (E5M2); `fnNaN` means only S.1111.111 is NaN
    /// (E4M3FN); `fnuz` means 0x80 is the only NaN and there is no negative zero or infinity.
    static func decodeMinifloat(_ byte: UInt8, exponentBits: Int, mantissaBits: Int, bias: Int,
                                ieeeSpecials: Bool, fnNaN: Bool, fnuz: Bool) -> Float {
        if fnuz && byte == 0x80 { return .nan }
        let sign: Float = (byte & 0x80) != 0 ? -1 : 1
        let exponent = Int(byte >> UInt8(mantissaBits)) & ((1 << exponentBits) - 1)
        let mantissa = Int(byte) & ((1 << mantissaBits) - 1)
        let maxExponent = (1 << exponentBits) - 1
        if ieeeSpecials && exponent == maxExponent { return mantissa == 0 ? sign * .infinity : .nan }
        if fnNaN && exponent == maxExponent && mantissa == (1 << mantissaBits) - 1 { return .nan }
        let fraction = Float(mantissa) / Float(1 << mantissaBits)
        if exponent == 0 { return sign * fraction * Float(sign: .plus, exponent: 1 - bias, significand: 1) }
        return sign * (1 + fraction) * Float(sign: .plus, exponent: exponent - bias, significand: 1)
    }

    struct F8Tables {
        let e4m3, e5m2, e8m0, e4m3fnuz, e5m2fnuz: [Float]
    }

    static let f8Tables: F8Tables = {
        func table(_ f: (UInt8) -> Float) -> [Float] { (0...255).map { f(UInt8($0)) } }
        return F8Tables(
            e4m3: table { decodeMinifloat($0, exponentBits: 4, mantissaBits: 3, bias: 7,
                                          ieeeSpecials: false, fnNaN: true, fnuz: false) },
            e5m2: table { decodeMinifloat($0, exponentBits: 5, mantissaBits: 2, bias: 15,
                                          ieeeSpecials: true, fnNaN: false, fnuz: false) },
            // E8M0: an unsigned power of two 2^(e-127); 0xFF is NaN. No zero, no sign.
            e8m0: table { $0 == 0xFF ? .nan : Float(sign: .plus, exponent: Int($0) - 127, significand: 1) },
            e4m3fnuz: table { decodeMinifloat($0, exponentBits: 4, mantissaBits: 3, bias: 8,
                                              ieeeSpecials: false, fnNaN: false, fnuz: true) },
            e5m2fnuz: table { decodeMinifloat($0, exponentBits: 5, mantissaBits: 2, bias: 16,
                                              ieeeSpecials: false, fnNaN: false, fnuz: true) })
    }()

    // MARK: - Bulk conversion

    /// Widens `count` elements of `dtype` starting at `src` (any alignment) into `dst`.
    /// Integer types convert to the nearest Float. Fails for the packed and complex types.
    public static func decode(_ dtype: DType, from src: UnsafeRawPointer, count: Int,
                              into dst: UnsafeMutablePointer<Float>) throws {
        switch dtype {
        case .f32:
            UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: count * 4)
        case .bf16:
            for i in 0..<count { dst[i] = bf16ToF32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .f16:
            for i in 0..<count {
                dst[i] = Float(src.loadUnaligned(fromByteOffset: 2 * i, as: Float16.self))
            }
        case .f64:
            for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
        case .f8e4m3, .f8e5m2, .f8e8m0, .f8e4m3fnuz, .f8e5m2fnuz:
            let table: [Float]
            switch dtype {
            case .f8e4m3: table = f8Tables.e4m3
            case .f8e5m2: table = f8Tables.e5m2
            case .f8e8m0: table = f8Tables.e8m0
            case .f8e4m3fnuz: table = f8Tables.e4m3fnuz
            default: table = f8Tables.e5m2fnuz
            }
            let bytes = src.assumingMemoryBound(to: UInt8.self)
            table.withUnsafeBufferPointer { t in for i in 0..<count { dst[i] = t[Int(bytes[i])] } }
        case .bool, .u8:
            for i in 0..<count { dst[i] = Float(src.load(fromByteOffset: i, as: UInt8.self)) }
        case .i8:
            for i in 0..<count { dst[i] = Float(src.load(fromByteOffset: i, as: Int8.self)) }
        case .i16:
            for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)) }
        case .u16:
            for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .i32:
            for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)) }
        case .u32:
            for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) }
        case .i64:
            for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)) }
        case .u64:
            for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)) }
        case .f4, .f6e2m3, .f6e3m2, .c64:
            throw ElementConversionError.notDecodable(dtype)
        }
    }

    /// Narrows `count` F32 values into `dtype` at `dst` (any alignment). Only the types nopekit
    /// writes as re-typed floats are accepted.
    public static func encode(_ src: UnsafePointer<Float>, count: Int, as dtype: DType,
                              into dst: UnsafeMutableRawPointer) throws {
        switch dtype {
        case .f32:
            dst.copyMemory(from: src, byteCount: count * 4)
        case .bf16:
            for i in 0..<count { dst.storeBytes(of: f32ToBF16(src[i]), toByteOffset: 2 * i, as: UInt16.self) }
        case .f16:
            for i in 0..<count { dst.storeBytes(of: Float16(src[i]), toByteOffset: 2 * i, as: Float16.self) }
        default:
            throw ElementConversionError.notEncodable(dtype)
        }
    }

    /// The data types `encode` can produce.
    public static let encodableTypes: [DType] = [.f32, .f16, .bf16]
}

/// A request to convert into or out of a type nopekit has no codec for.
public enum ElementConversionError: Error, CustomStringConvertible, Equatable {
    case notDecodable(DType)
    case notEncodable(DType)

    public var description: String {
        switch self {
        case .notDecodable(let t): return "nopekit cannot decode \(t.code) values (packed or complex type); only the float and integer types are converted"
        case .notEncodable(let t): return "nopekit cannot write \(t.code) values; re-typing targets are F32, F16 and BF16"
        }
    }
}
