/// Streams a stored tensor into a writer, optionally re-typed.
///
/// Float tensors are widened to F32 chunk by chunk and narrowed to the target with
/// round-to-nearest-even; integer and bool tensors are copied unchanged (as transformers'
/// `torch_dtype` casting does). Each chunk's source pages are released after use, so converting
/// a checkpoint holds about two chunks in memory whatever the model size.
public enum TensorRetyping {
    /// Elements per chunk: 1 Mi elements = 4 MiB of F32 scratch.
    public static let chunkElements = 1 << 20

    /// The dtype `info` will have after re-typing to `target` (nil target: unchanged).
    public static func outputType(of info: TensorInfo, target: DType?) -> DType {
        guard let target, info.dtype.isFloat else { return info.dtype }
        return target
    }

    /// An `OutputTensor` that reads `info` from `store` when written.
    public static func output(_ info: TensorInfo, from store: any TensorStore, target: DType?) throws -> OutputTensor {
        let outType = outputType(of: info, target: target)
        if outType == info.dtype {
            return OutputTensor(name: info.name, dtype: info.dtype, shape: info.shape, byteCount: info.byteCount) { sink in
                try store.forEachChunk(info.name, chunkBytes: 8 << 20, sink)
            }
        }
        guard let inSize = info.dtype.byteSize, let outSize = outType.byteSize,
              ElementConversion.encodableTypes.contains(outType) else {
            throw ConversionError.notEncodable(outType)
        }
        let count = info.elementCount
        return OutputTensor(name: info.name, dtype: outType, shape: info.shape, byteCount: count * outSize) { sink in
            var scratch = [Float](repeating: 0, count: min(count, chunkElements))
            var out = [UInt8](repeating: 0, count: min(count, chunkElements) * outSize)
            try store.forEachChunk(info.name, chunkBytes: chunkElements * inSize) { chunk in
                let n = chunk.count / inSize
                try scratch.withUnsafeMutableBufferPointer { f in
                    try ElementConversion.decode(info.dtype, from: chunk.baseAddress!, count: n, into: f.baseAddress!)
                    try out.withUnsafeMutableBytes { o in
                        try ElementConversion.encode(f.baseAddress!, count: n, as: outType, into: o.baseAddress!)
                        try sink(UnsafeRawBufferPointer(rebasing: o[0..<(n * outSize)]))
                    }
                }
            }
        }
    }
}
