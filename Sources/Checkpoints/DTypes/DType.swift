/// The element types a tensor can have, named by their safetensors header codes.
///
/// The cases are declared in the order of the safetensors crate's `Dtype` enum (increasing
/// alignment), because the reference writer sorts tensors by that order, descending, and our
/// writer must produce the same bytes. GGUF types map onto these where they are plain element
/// types; quantised GGUF blocks are a separate concern.
public enum DType: String, CaseIterable, Sendable, Comparable {
    case bool = "BOOL"
    case f4 = "F4"
    case f6e2m3 = "F6_E2M3"
    case f6e3m2 = "F6_E3M2"
    case u8 = "U8"
    case i8 = "I8"
    case f8e5m2 = "F8_E5M2"
    case f8e4m3 = "F8_E4M3"
    case f8e8m0 = "F8_E8M0"
    case f8e4m3fnuz = "F8_E4M3FNUZ"
    case f8e5m2fnuz = "F8_E5M2FNUZ"
    case i16 = "I16"
    case u16 = "U16"
    case f16 = "F16"
    case bf16 = "BF16"
    case i32 = "I32"
    case u32 = "U32"
    case f32 = "F32"
    case c64 = "C64"
    case f64 = "F64"
    case i64 = "I64"
    case u64 = "U64"

    /// The safetensors header code, e.g. `"BF16"`.
    public var code: String { rawValue }

    /// Position in the reference crate's enum; the writer sorts by it, descending.
    public var alignmentRank: Int { DType.allCases.firstIndex(of: self)! }

    public static func < (a: DType, b: DType) -> Bool { a.alignmentRank < b.alignmentRank }

    /// Bits per element. Sub-byte types (F4, F6_*) are stored packed.
    public var bitSize: Int {
        switch self {
        case .f4: return 4
        case .f6e2m3, .f6e3m2: return 6
        case .bool, .u8, .i8, .f8e5m2, .f8e4m3, .f8e8m0, .f8e4m3fnuz, .f8e5m2fnuz: return 8
        case .i16, .u16, .f16, .bf16: return 16
        case .i32, .u32, .f32: return 32
        case .c64, .f64, .i64, .u64: return 64
        }
    }

    /// Bytes per element, or nil for the packed sub-byte types.
    public var byteSize: Int? { bitSize % 8 == 0 ? bitSize / 8 : nil }

    /// True for the real floating-point types that nopekit can widen to F32 and re-type.
    public var isFloat: Bool {
        switch self {
        case .f64, .f32, .f16, .bf16, .f8e4m3, .f8e5m2, .f8e8m0, .f8e4m3fnuz, .f8e5m2fnuz: return true
        default: return false
        }
    }

    /// Types that are recognised (a file holding them opens and inspects) but whose values
    /// nopekit does not decode.
    public var isDecodable: Bool { isFloat || isInteger }

    public var isInteger: Bool {
        switch self {
        case .bool, .u8, .i8, .i16, .u16, .i32, .u32, .i64, .u64: return true
        default: return false
        }
    }

    /// The name HF `config.json` uses in `torch_dtype` / `dtype`, where one exists.
    public var torchName: String? {
        switch self {
        case .f32: return "float32"
        case .f16: return "float16"
        case .bf16: return "bfloat16"
        case .f64: return "float64"
        default: return nil
        }
    }

    /// Byte count of `elements` values, or nil when it overflows or ends off a byte boundary.
    public func byteCount(elements: Int) -> Int? {
        let (bits, overflow) = elements.multipliedReportingOverflow(by: bitSize)
        guard !overflow, bits % 8 == 0 else { return nil }
        return bits / 8
    }
}
