import Checkpoints

/// The `--type` of a GGUF written from a Hugging Face checkpoint: the type of every 2-D
/// weight ("pure", as `llama-quantize --pure`); 1-D tensors (norms, biases) are always F32, as
/// llama.cpp's converter keeps them.
public enum GGUFOutputType: String, CaseIterable, Sendable {
    case f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k

    public var ggml: GGMLType {
        switch self {
        case .f32: .f32
        case .f16: .f16
        case .bf16: .bf16
        case .q8_0: .q8_0
        case .q4_0: .q4_0
        case .q4_1: .q4_1
        case .q5_0: .q5_0
        case .q5_1: .q5_1
        case .q4_k: .q4_K
        case .q5_k: .q5_K
        case .q6_k: .q6_K
        }
    }

    /// `general.file_type` (llama.cpp `llama_ftype`; K types as their pure `_S` variants).
    public var fileType: UInt32 {
        switch self {
        case .f32: 0
        case .f16: 1
        case .q4_0: 2
        case .q4_1: 3
        case .q8_0: 7
        case .q5_0: 8
        case .q5_1: 9
        case .q4_k: 14
        case .q5_k: 16
        case .q6_k: 18
        case .bf16: 32
        }
    }

    /// The type a weight of this `shape` is stored as: F32 for 1-D tensors; for rows that are
    /// not whole blocks, llama-quantize's fallbacks (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0),
    /// then F16.
    public func storedType(shape: [Int]) -> GGMLType {
        guard shape.count >= 2, let columns = shape.last else { return .f32 }
        var candidates = [ggml]
        switch self {
        case .q4_k: candidates.append(.q5_0)
        case .q5_k: candidates.append(.q5_1)
        case .q6_k: candidates.append(.q8_0)
        default: break
        }
        candidates.append(.f16)
        return candidates.first { columns % $0.blockElements == 0 }!  // F16's block is one element
    }

    /// The type matching a stored float type, for `--type` left out.
    public static func matching(_ dtype: DType?) -> GGUFOutputType {
        switch dtype {
        case .f16: .f16
        case .bf16: .bf16
        default: .f32
        }
    }
}
