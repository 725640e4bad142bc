/// Streams a stored tensor into a safetensors writer, optionally re-typed.
///
/// Float tensors are narrowed to the target with round-to-nearest-even; integer and bool tensors
/// are copied unchanged (as transformers' `torch_dtype` casting does); ggml-quantised tensors are
/// dequantised (they have no safetensors type of their own, so they need a target, F32 by
/// default). Packed types (F4, F6) cannot be re-typed and are refused. The bytes stream through
/// `TensorTranscoder`, a block of rows at a time.
public enum TensorRetyping {
    /// The dtype `info` will have after re-typing to `target` (nil target: unchanged, and F32
    /// for quantised blocks).
    public static func outputType(of info: TensorInfo, target: DType?) -> DType {
        switch info.type {
        case .quantized: return target ?? .f32
        case .plain(let d): return d.isFloat ? (target ?? d) : d
        }
    }

    /// An `OutputTensor` that reads `info` from `store` when written.
    public static func output(_ info: TensorInfo, from store: any TensorStore, target: DType?) throws -> OutputTensor {
        // Packed sub-byte floats cannot be widened; copying them under a --dtype would leave
        // them silently in their own type.
        if let target, let d = info.dtype, d.byteSize == nil, d != target {
            throw TranscodeError.packedType(name: info.name, type: d.code, target: target.code)
        }
        return try TensorTranscoder.output(info, from: store, as: .plain(outputType(of: info, target: target)))
    }
}
