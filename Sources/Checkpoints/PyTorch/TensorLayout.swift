/// Where one tensor's elements lie in its storage record, validated, and how to copy them out.
///
/// A torch tensor is a view: `(storage, offset, size, stride)`, all in elements, and several
/// tensors may share one storage (tied embeddings; `w.t()` saved next to `w`). A view that is
/// contiguous in a STORED record is read straight from the map. Any other view (transposed,
/// strided, broadcast with stride 0), a DEFLATED record, or a big-endian archive is gathered
/// into a contiguous little-endian buffer when it is read.
struct TensorLayout {
    let entry: ZipArchive.Entry
    let dtype: DType
    let elementSize: Int
    /// In elements of the tensor's dtype.
    let storageOffset: Int
    let size: [Int]
    let stride: [Int]
    let elementCount: Int
    /// Bytes of the contiguous result.
    let byteCount: Int
    /// Bytes of the storage the view reaches (from the record's start): all a gather needs.
    let extentBytes: Int
    /// Row-major with no gaps (dimensions of size 1 may have any stride).
    let isContiguous: Bool
    /// When > 1, every `swapUnit` bytes are reversed (big-endian archive; complex numbers swap
    /// each half, as torch's `byteswap` does).
    let swapUnit: Int

    /// The tensor's bytes are exactly a range of the file.
    var isMapped: Bool { isContiguous && entry.isStored && swapUnit <= 1 }

    /// Absolute offset of the first element when the storage record is STORED.
    var firstByte: Int { entry.dataOffset + storageOffset * elementSize }

    /// Validates `ref` (named `name`) against its storage record `entry`. `fileSize` bounds
    /// what a view whose elements overlap (stride 0, a broadcast) may expand to; see below.
    init(_ ref: TensorRef, name: String, entry: ZipArchive.Entry, bigEndian: Bool, fileSize: Int, file: String) throws {
        guard let dtype = ref.scalar.dtype else {
            throw PyTorchError.unsupportedDType(file: file, tensor: name, dtype: "torch.\(ref.scalar.name)")
        }
        let outOfBounds = { (detail: String) in PyTorchError.tensorOutOfBounds(file: file, tensor: name, detail: detail) }
        let overflow = PyTorchError.validationOverflow(file: file, tensor: name)
        guard ref.storage.numel >= 0 else { throw outOfBounds("its storage '\(ref.storage.key)' has a negative size \(ref.storage.numel)") }
        guard let storageBytes = ref.storage.byteCount else { throw overflow }
        // torch itself refuses a record whose size is not the declared storage size.
        guard storageBytes == entry.uncompressedSize else {
            throw PyTorchError.storageSizeMismatch(file: file, key: ref.storage.key, declaredBytes: storageBytes, recordBytes: entry.uncompressedSize)
        }
        if let bad = ref.size.first(where: { $0 < 0 }) { throw outOfBounds("negative dimension \(bad) in shape \(ref.size)") }
        if let bad = ref.stride.first(where: { $0 < 0 }) { throw outOfBounds("negative stride \(bad) in strides \(ref.stride)") }
        guard ref.storageOffset >= 0 else { throw outOfBounds("negative storage offset \(ref.storageOffset)") }

        let es = ref.scalar.elementSize
        var count = 1
        for d in ref.size {
            let (n, o) = count.multipliedReportingOverflow(by: d)
            guard !o else { throw overflow }
            count = n
        }
        let (bytes, o1) = count.multipliedReportingOverflow(by: es)
        guard !o1 else { throw overflow }

        // The last element the view touches: offset + Σ (size−1)·stride.
        var extent = 0
        if count > 0 {
            var last = ref.storageOffset
            for (s, st) in zip(ref.size, ref.stride) {
                let (step, o2) = (s - 1).multipliedReportingOverflow(by: st)
                let (sum, o3) = last.addingReportingOverflow(step)
                guard !o2, !o3 else { throw overflow }
                last = sum
            }
            guard last < Int.max else { throw overflow }
            let (e, o4) = (last + 1).multipliedReportingOverflow(by: es)
            guard !o4 else { throw overflow }
            extent = e
            guard extent <= storageBytes else {
                throw outOfBounds("shape \(ref.size) with strides \(ref.stride) at storage offset \(ref.storageOffset) reaches element \(last) of storage '\(ref.storage.key)', which holds \(storageBytes / es) elements of \(es) bytes")
            }
        } else {
            let (start, o5) = ref.storageOffset.multipliedReportingOverflow(by: es)
            guard !o5 else { throw overflow }
            guard start <= storageBytes else {
                throw outOfBounds("storage offset \(ref.storageOffset) is past the end of storage '\(ref.storage.key)' (\(storageBytes) bytes)")
            }
        }

        // A view that reads some storage elements more than once (a broadcast, stride 0) is
        // larger than the bytes it reads, and reading it allocates its full size. A legitimate
        // one is a small buffer (HF's `position_ids`, `arange(n).expand(1, -1)`); one larger
        // than the whole file is how a few bytes could make us allocate terabytes.
        if bytes > extent && bytes > fileSize {
            throw outOfBounds("a broadcast view of \(extent) stored bytes would expand to \(bytes) bytes, more than the \(fileSize)-byte file")
        }

        var contiguous = true
        var expected = 1
        for d in Swift.stride(from: ref.size.count - 1, through: 0, by: -1) where ref.size[d] != 1 {
            if ref.stride[d] != expected { contiguous = false }
            expected = expected &* ref.size[d]
        }

        self.entry = entry
        self.dtype = dtype
        self.elementSize = es
        self.storageOffset = ref.storageOffset
        self.size = ref.size
        self.stride = ref.stride
        self.elementCount = count
        self.byteCount = bytes
        self.extentBytes = extent
        self.isContiguous = contiguous || count == 0
        self.swapUnit = bigEndian ? ref.scalar.swapUnit : 1
    }

    /// Copies the view's elements, row-major, from `storage` (the record's bytes from its start,
    /// at least `extentBytes` long) into `out` (`byteCount` bytes), then fixes the byte order.
    func gather(from storage: UnsafeRawBufferPointer, into out: UnsafeMutableRawPointer) {
        precondition(storage.count >= extentBytes)
        guard elementCount > 0 else { return }
        let es = elementSize
        let src = storage.baseAddress!
        if size.isEmpty {
            out.copyMemory(from: src + storageOffset * es, byteCount: es)
        } else if isContiguous {
            out.copyMemory(from: src + storageOffset * es, byteCount: byteCount)
        } else {
            let inner = size[size.count - 1], innerStride = stride[stride.count - 1]
            let outerDims = size.count - 1
            var index = [Int](repeating: 0, count: outerDims)
            var written = 0
            for _ in 0..<(elementCount / inner) {
                var base = storageOffset
                for d in 0..<outerDims { base += index[d] * stride[d] }
                if innerStride == 1 {
                    (out + written).copyMemory(from: src + base * es, byteCount: inner * es)
                    written += inner * es
                } else {
                    for j in 0..<inner {
                        (out + written).copyMemory(from: src + (base + j * innerStride) * es, byteCount: es)
                        written += es
                    }
                }
                var d = outerDims - 1
                while d >= 0 {
                    index[d] += 1
                    if index[d] < size[d] { break }
                    index[d] = 0
                    d -= 1
                }
            }
        }
        if swapUnit > 1 { Self.swapBytes(out, count: byteCount, unit: swapUnit) }
    }

    /// Reverses the bytes of every `unit`-byte group.
    static func swapBytes(_ p: UnsafeMutableRawPointer, count: Int, unit: Int) {
        let b = p.assumingMemoryBound(to: UInt8.self)
        var at = 0
        while at + unit <= count {
            var i = at, j = at + unit - 1
            while i < j {
                let t = b[i]; b[i] = b[j]; b[j] = t
                i += 1; j -= 1
            }
            at += unit
        }
    }
}
