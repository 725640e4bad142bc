/// A tensor to be written, in any format: its description plus a producer that streams
/// exactly `byteCount` bytes into a sink, chunk by chunk. Producers read from a mapped source
/// and convert on the fly, so writing holds about one chunk in memory, not one model.
public struct OutputTensor {
    public var name: String
    /// Plain elements (safetensors and GGUF) or ggml blocks (GGUF only).
    public var type: TensorType
    /// HF order, outermost first (GGUF writes it reversed as `ne`).
    public var shape: [Int]
    public var byteCount: Int
    public var produce: (_ sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Void
    /// Where the bytes already lie, unchanged, in a file (a tensor copied from a mapped
    /// checkpoint): writers then let the kernel copy them (`copy_file_range`) instead of
    /// calling `produce`, as `cp` does.
    public var fileRange: (path: String, offset: Int)?

    public init(name: String, type: TensorType, shape: [Int], byteCount: Int,
                produce: @escaping (_ sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) {
        self.name = name
        self.type = type
        self.shape = shape
        self.byteCount = byteCount
        self.produce = produce
    }

    public init(name: String, dtype: DType, shape: [Int], byteCount: Int,
                produce: @escaping (_ sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) {
        self.init(name: name, type: .plain(dtype), shape: shape, byteCount: byteCount, produce: produce)
    }

    /// The plain element type, or nil for ggml blocks.
    public var dtype: DType? { type.plainType }

    /// A tensor whose bytes are already in memory.
    public static func inMemory(name: String, dtype: DType, shape: [Int], bytes: [UInt8]) -> OutputTensor {
        OutputTensor(name: name, dtype: dtype, shape: shape, byteCount: bytes.count) { sink in
            try bytes.withUnsafeBytes { try sink($0) }
        }
    }

    /// A stored tensor streamed unchanged from `store`.
    public static func copy(_ info: TensorInfo, from store: any TensorStore) -> OutputTensor {
        var t = OutputTensor(name: info.name, type: info.type, shape: info.shape, byteCount: info.byteCount) { sink in
            try store.forEachChunk(info.name, chunkBytes: 8 << 20, sink)
        }
        if store.mapsFiles { t.fileRange = (info.file, info.fileOffset) }
        return t
    }
}
