/// Streams a stored tensor into a safetensors writer, optionally re-typed.
///
/// Float tensors are widened to F32 chunk by chunk and narrowed to the target with
/// round-to-nearest-even; integer and bool tensors are copied unchanged (as transformers'
/// `torch_dtype` casting does); ggml-quantised tensors are dequantised (they have no safetensors
/// type of their own, so they need a target, F32 by default). Each chunk's source pages are
/// released after use, so converting a checkpoint holds about two chunks in memory whatever
/// the model size.
public enum TensorRetyping {
    /// Elements per chunk: 1 Mi elements = 4 MiB of F32 scratch.
    public static let chunkElements = 1 << 20

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
        let outType = outputType(of: info, target: target)
        if info.type == .plain(outType) { return .copy(info, from: store) }
        guard let outSize = outType.byteSize, ElementConversion.encodableTypes.contains(outType) else {
            throw ConversionError.notEncodable(outType)
        }
        let unitBytes = info.type.unitBytes, unitElements = info.type.unitElements
        let count = info.elementCount
        let chunkUnits = max(1, chunkElements / unitElements)
        return OutputTensor(name: info.name, dtype: outType, shape: info.shape, byteCount: count * outSize) { sink in
            let capacity = min(count, chunkUnits * unitElements)
            var scratch = [Float](repeating: 0, count: capacity)
            var out = [UInt8](repeating: 0, count: capacity * outSize)
            try store.forEachChunk(info.name, chunkBytes: chunkUnits * unitBytes) { chunk in
                let n = chunk.count / unitBytes * unitElements
                try scratch.withUnsafeMutableBufferPointer { f in
                    try info.type.decode(chunk.baseAddress!, count: n, into: f.baseAddress!)
                    try out.withUnsafeMutableBytes { o in
                        try ElementConversion.encode(f.baseAddress!, count: n, as: outType, into: o.baseAddress!)
                        try sink(UnsafeRawBufferPointer(rebasing: o[0..<(n * outSize)]))
                    }
                }
            }
        }
    }
}
