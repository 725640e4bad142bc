/// ggml's tensor element types, with the ids GGUF stores (ggml.h `enum ggml_type`).
///
/// Removed ids (4, 5: Q4_2/Q4_3; 31–33: Q4_0_4_4/4_8/8_8; 36–38: IQ4_NL_4_4/4_8/8_8) are not
/// cases, so a file using them fails to decode its type, as llama.cpp's loader refuses it.
public enum GGMLType: UInt32, CaseIterable, Sendable, CustomStringConvertible {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case iq2_XXS = 16, iq2_XS = 17, iq3_XXS = 18, iq1_S = 19, iq4_NL = 20, iq3_S = 21, iq2_S = 22, iq4_XS = 23
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_M = 29, bf16 = 30
    case tq1_0 = 34, tq2_0 = 35, mxfp4 = 39, nvfp4 = 40, q1_0 = 41, q2_0 = 42

    /// Elements per block and bytes per block (ggml `type_traits`; gguf-py `GGML_QUANT_SIZES`,
    /// except Q8_1, which is 36 bytes in C and 40 in gguf-py: the C struct is what files hold).
    public var blockLayout: (elements: Int, bytes: Int) {
        switch self {
        case .f32: return (1, 4)
        case .f16, .bf16: return (1, 2)
        case .f64, .i64: return (1, 8)
        case .i8: return (1, 1)
        case .i16: return (1, 2)
        case .i32: return (1, 4)
        case .q4_0: return (32, 18)
        case .q4_1: return (32, 20)
        case .q5_0: return (32, 22)
        case .q5_1: return (32, 24)
        case .q8_0: return (32, 34)
        case .q8_1: return (32, 36)
        case .q2_K: return (256, 84)
        case .q3_K: return (256, 110)
        case .q4_K: return (256, 144)
        case .q5_K: return (256, 176)
        case .q6_K: return (256, 210)
        case .q8_K: return (256, 292)
        case .iq2_XXS: return (256, 66)
        case .iq2_XS: return (256, 74)
        case .iq3_XXS: return (256, 98)
        case .iq1_S: return (256, 50)
        case .iq4_NL: return (32, 18)
        case .iq3_S: return (256, 110)
        case .iq2_S: return (256, 82)
        case .iq4_XS: return (256, 136)
        case .iq1_M: return (256, 56)
        case .tq1_0: return (256, 54)
        case .tq2_0: return (256, 66)
        case .mxfp4: return (32, 17)
        case .nvfp4: return (64, 36)
        case .q1_0: return (128, 18)
        case .q2_0: return (64, 18)
        }
    }

    public var blockElements: Int { blockLayout.elements }
    public var blockBytes: Int { blockLayout.bytes }

    /// ggml's name, e.g. `Q4_K`, `IQ2_XXS`, `BF16`.
    public var name: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        case .q5_0: return "Q5_0"
        case .q5_1: return "Q5_1"
        case .q8_0: return "Q8_0"
        case .q8_1: return "Q8_1"
        case .q2_K: return "Q2_K"
        case .q3_K: return "Q3_K"
        case .q4_K: return "Q4_K"
        case .q5_K: return "Q5_K"
        case .q6_K: return "Q6_K"
        case .q8_K: return "Q8_K"
        case .iq2_XXS: return "IQ2_XXS"
        case .iq2_XS: return "IQ2_XS"
        case .iq3_XXS: return "IQ3_XXS"
        case .iq1_S: return "IQ1_S"
        case .iq4_NL: return "IQ4_NL"
        case .iq3_S: return "IQ3_S"
        case .iq2_S: return "IQ2_S"
        case .iq4_XS: return "IQ4_XS"
        case .i8: return "I8"
        case .i16: return "I16"
        case .i32: return "I32"
        case .i64: return "I64"
        case .f64: return "F64"
        case .iq1_M: return "IQ1_M"
        case .bf16: return "BF16"
        case .tq1_0: return "TQ1_0"
        case .tq2_0: return "TQ2_0"
        case .mxfp4: return "MXFP4"
        case .nvfp4: return "NVFP4"
        case .q1_0: return "Q1_0"
        case .q2_0: return "Q2_0"
        }
    }

    public var description: String { name }

    /// Looks a type up by ggml's name (case-insensitive).
    public init?(name: String) {
        guard let t = GGMLType.allCases.first(where: { $0.name.lowercased() == name.lowercased() }) else { return nil }
        self = t
    }

    /// The plain element type this stores, for types that are not block-quantised.
    public var plainType: DType? {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .f64: return .f64
        case .i8: return .i8
        case .i16: return .i16
        case .i32: return .i32
        case .i64: return .i64
        default: return nil
        }
    }

    /// The GGML type that stores a plain element type, if GGUF has one.
    public init?(plain: DType) {
        switch plain {
        case .f32: self = .f32
        case .f16: self = .f16
        case .bf16: self = .bf16
        case .f64: self = .f64
        case .i8: self = .i8
        case .i16: self = .i16
        case .i32: self = .i32
        case .i64: self = .i64
        default: return nil
        }
    }

    public var isQuantized: Bool { plainType == nil }

    /// Bits per weight of the stored format.
    public var bitsPerWeight: Double { Double(blockBytes * 8) / Double(blockElements) }

    /// Bytes of a row of `elements` values, or nil if the row is not whole blocks.
    public func rowBytes(elements: Int) -> Int? {
        guard elements % blockElements == 0 else { return nil }
        return elements / blockElements * blockBytes
    }
}

/// How a tensor's elements are stored: a plain element type, or ggml quantised blocks.
public enum TensorType: Hashable, Sendable, CustomStringConvertible {
    case plain(DType)
    case quantized(GGMLType)

    /// `BF16`, `Q4_K`, …: the safetensors code for plain types, ggml's name for blocks.
    public var name: String {
        switch self {
        case .plain(let d): return d.code
        case .quantized(let q): return q.name
        }
    }

    public var description: String { name }

    public var plainType: DType? { if case .plain(let d) = self { return d } else { return nil } }

    /// How a GGUF tensor of `ggml` type stores its elements.
    public init(ggml: GGMLType) { self = ggml.plainType.map { .plain($0) } ?? .quantized(ggml) }

    /// Widens `count` elements (whole blocks for ggml types) starting at `src` into `dst`.
    public func decode(_ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) throws {
        switch self {
        case .plain(let d): try ElementConversion.decode(d, from: src, count: count, into: dst)
        case .quantized(let q): try BlockCodecs.dequantize(q, from: src, count: count, into: dst)
        }
    }

    /// Bytes of a row of `elements` values, or nil if the row is not whole blocks (or the
    /// elements are packed below a byte).
    public func rowBytes(elements: Int) -> Int? {
        switch self {
        case .plain(let d): return d.byteSize.map { $0 * elements }
        case .quantized(let q): return q.rowBytes(elements: elements)
        }
    }

    /// The unit that streaming never splits: one element, or one block.
    public var unitBytes: Int {
        switch self {
        case .plain(let d): return d.byteSize ?? 1
        case .quantized(let q): return q.blockBytes
        }
    }

    /// Elements per unit (1 for plain types).
    public var unitElements: Int {
        if case .quantized(let q) = self { return q.blockElements }
        return 1
    }
}
