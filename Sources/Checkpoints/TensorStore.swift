/// One tensor as a checkpoint stores it: name, element type, shape (HF order, `[out, in]`) and
/// where its bytes are.
public struct TensorInfo: Equatable, Sendable {
    public var name: String
    /// Plain elements or ggml quantised blocks.
    public var type: TensorType
    /// Dimensions outermost first (row-major), the HF / PyTorch convention.
    public var shape: [Int]
    /// Stored bytes of the tensor.
    public var byteCount: Int
    /// The file that holds the bytes.
    public var file: String
    /// Absolute byte offset of the first element in `file`.
    public var fileOffset: Int

    public init(name: String, type: TensorType, shape: [Int], byteCount: Int, file: String, fileOffset: Int) {
        self.name = name
        self.type = type
        self.shape = shape
        self.byteCount = byteCount
        self.file = file
        self.fileOffset = fileOffset
    }

    public init(name: String, dtype: DType, shape: [Int], byteCount: Int, file: String, fileOffset: Int) {
        self.init(name: name, type: .plain(dtype), shape: shape, byteCount: byteCount, file: file, fileOffset: fileOffset)
    }

    /// The plain element type, or nil for quantised blocks.
    public var dtype: DType? { type.plainType }

    /// Number of elements (1 for a scalar, 0 if any dimension is 0).
    public var elementCount: Int { Self.elementCount(of: shape) }

    /// The elements of `shape`: 0 if any dimension is 0, whatever the others (the readers
    /// check the product in file order, where a zero may come first: multiplied in HF order,
    /// `[2^40, 2^40, 0]` overflowed — found by FuzzGGUF), else the product.
    public static func elementCount(of shape: [Int]) -> Int { shape.contains(0) ? 0 : shape.reduce(1, *) }
}

/// Read access to the tensors of a checkpoint, whatever its format.
///
/// Stores are lazy: opening one reads headers only; bytes are mapped, not copied, and a tensor's
/// pages are touched only when it is read. The engine, the bake and the converter all read
/// through this protocol, so they work the same on safetensors, GGUF and `.bin` checkpoints.
public protocol TensorStore: AnyObject {
    /// Every tensor, in storage order (file by file, by offset).
    var tensors: [TensorInfo] { get }

    /// Where the checkpoint came from (file or folder), for messages.
    var sourcePath: String { get }

    /// Whether `TensorInfo.file`/`fileOffset` locate each tensor's bytes in a real file.
    var mapsFiles: Bool { get }

    /// The tensor called `name`, if there is one (a dictionary lookup, not a scan).
    func lookup(_ name: String) -> TensorInfo?

    /// The raw stored bytes of `name`, valid during `body`.
    func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R

    /// Hands the pages of bytes `range` (relative to the tensor's first byte) of `name` back to
    /// the kernel after a streamed read. A no-op for stores that do not map files.
    func releasePages(_ name: String, range: Range<Int>)
}

extension TensorStore {
    public var mapsFiles: Bool { false }

    public func info(_ name: String) throws -> TensorInfo {
        guard let t = lookup(name) else {
            throw TensorStoreError.tensorNotFound(name: name, source: sourcePath)
        }
        return t
    }

    public func contains(_ name: String) -> Bool { lookup(name) != nil }

    /// Hands all pages of `name` back to the kernel.
    public func releasePages(_ name: String) {
        if let t = lookup(name) { releasePages(name, range: 0..<t.byteCount) }
    }

    /// Streams `name`'s raw bytes in chunks of at most `chunkBytes` (rounded down to whole
    /// elements), releasing each chunk's pages after `body` returns, so a tensor larger than RAM
    /// streams with a flat resident set.
    public func forEachChunk(_ name: String, chunkBytes: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let t = try info(name)
        let unit = t.type.unitBytes
        let step = max(unit, chunkBytes / unit * unit)
        try withRawBytes(name) { raw in
            var offset = 0
            while offset < raw.count {
                let next = min(raw.count, offset + step)
                try body(UnsafeRawBufferPointer(rebasing: raw[offset..<next]))
                releasePages(name, range: offset..<next)
                offset = next
            }
        }
    }

    /// The whole tensor widened to F32 (BF16/F16 widened, F8 decoded, integers converted,
    /// quantised blocks dequantised).
    public func readF32(_ name: String) throws -> [Float] {
        let t = try info(name)
        return try withRawBytes(name) { raw in
            try [Float](unsafeUninitializedCapacity: t.elementCount) { buf, n in
                if t.elementCount > 0 {
                    try t.type.decode(raw.baseAddress!, count: t.elementCount, into: buf.baseAddress!)
                }
                n = t.elementCount
            }
        }
    }

    /// A sub-block of one tensor widened to F32: `ranges[d]` selects indices along dimension `d`
    /// (missing trailing dimensions are taken whole). Only the bytes of the selected rows are
    /// touched, so reading a few rows of a large matrix costs a few pages.
    public func readF32(_ name: String, ranges: [Range<Int>]) throws -> [Float] {
        let t = try info(name)
        guard ranges.count <= t.shape.count else {
            throw TensorStoreError.invalidSlice(name: name, reason: "\(ranges.count) ranges for a \(t.shape.count)-D tensor")
        }
        for (d, r) in ranges.enumerated() where r.lowerBound < 0 || r.upperBound > t.shape[d] {
            throw TensorStoreError.invalidSlice(name: name, reason: "range \(r) outside dimension \(d) of size \(t.shape[d])")
        }
        let full = ranges + t.shape[ranges.count...].map { 0..<$0 }
        if case .quantized(let q) = t.type, let last = full.last, last.count != t.shape.last {
            throw TensorStoreError.invalidSlice(name: name, reason: "\(q.name) blocks span whole rows: select whole rows of the last dimension")
        }
        let outShape = full.map(\.count)
        let total = outShape.reduce(1, *)
        // Row-major strides in elements.
        var strides = [Int](repeating: 1, count: t.shape.count)
        for d in stride(from: t.shape.count - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * t.shape[d + 1] }
        // Copy the innermost dimension as contiguous runs.
        let runLength = full.last?.count ?? 1
        return try withRawBytes(name) { raw in
            try [Float](unsafeUninitializedCapacity: total) { buf, n in
                n = total
                guard total > 0 else { return }
                var index = [Int](repeating: 0, count: max(0, full.count - 1))
                var written = 0
                while written < total {
                    var offset = 0
                    for d in 0..<index.count { offset += (full[d].lowerBound + index[d]) * strides[d] }
                    if let last = full.last { offset += last.lowerBound }
                    let byteOffset = offset / t.type.unitElements * t.type.unitBytes
                    try t.type.decode(raw.baseAddress! + byteOffset, count: runLength, into: buf.baseAddress! + written)
                    written += runLength
                    // Advance the multi-index over the outer dimensions.
                    var d = index.count - 1
                    while d >= 0 {
                        index[d] += 1
                        if index[d] < full[d].count { break }
                        index[d] = 0
                        d -= 1
                    }
                }
            }
        }
    }
}

public enum TensorStoreError: Error, CustomStringConvertible, Equatable {
    case tensorNotFound(name: String, source: String)
    case invalidSlice(name: String, reason: String)

    public var description: String {
        switch self {
        case .tensorNotFound(let n, let s): return "\(s): no tensor named '\(n)'"
        case .invalidSlice(let n, let r): return "tensor '\(n)': invalid slice: \(r)"
        }
    }
}
