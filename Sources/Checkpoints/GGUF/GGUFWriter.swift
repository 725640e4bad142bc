import Foundation

extension OutputTensor {
    /// The ggml type GGUF stores this tensor as, if it has one.
    var ggmlType: GGMLType? {
        switch type {
        case .plain(let d): return GGMLType(plain: d)
        case .quantized(let q): return q
        }
    }
}

/// Writes GGUF v3 files as llama.cpp and gguf-py lay them out: header, metadata in the given
/// order, tensor infos with offsets contiguous from 0 in tensor order, the data section aligned,
/// and every tensor padded with zeros to the alignment, the last one included.
///
/// The layout is planned completely (`plan`) before a byte is written, then streamed tensor
/// by tensor under a temporary name and renamed into place, so a failure leaves nothing.
/// With `maxShardBytes`, the output is split as gguf-py's writer splits (`split_max_size`):
/// `NAME-00001-of-0000N.gguf`, the first part carrying all metadata, every part carrying
/// `split.no` (u16), `split.count` (u16) and `split.tensors.count` (i32) at the end of its
/// metadata (and `general.alignment` when it is not 32, which gguf-py forgets).
public enum GGUFWriter {
    /// One output file of a plan.
    public struct Part {
        public var path: String
        public var metadata: [GGUFKeyValue]
        public var tensors: [OutputTensor]
    }

    /// Validates names and metadata and assigns tensors to parts: by `maxShardBytes`, or as
    /// `groups` (tensor counts per part, e.g. a split source's layout) when given.
    public static func plan(metadata: [GGUFKeyValue], tensors: [OutputTensor], to path: String,
                            maxShardBytes: Int?, groups counts: [Int]? = nil) throws -> [Part] {
        var keys = Set<String>()
        for kv in metadata {
            guard !kv.key.isEmpty else { throw GGUFWriterError.invalid(path: path, detail: "empty metadata key") }
            guard keys.insert(kv.key).inserted else { throw GGUFWriterError.invalid(path: path, detail: "metadata key '\(kv.key)' given twice") }
            if case .array(let items) = kv.value, items.contains(where: { $0.type == .array }) {
                throw GGUFWriterError.invalid(path: path, detail: "key '\(kv.key)': arrays of arrays are not readable by llama.cpp")
            }
        }
        if let a = metadata[GGUF.Key.alignment] {
            guard case .uint32(let v) = a, v != 0, v & (v - 1) == 0 else {
                throw GGUFWriterError.invalid(path: path, detail: "general.alignment must be a UINT32 power of two")
            }
        }
        var names = Set<String>()
        for t in tensors {
            guard names.insert(t.name).inserted else { throw GGUFWriterError.invalid(path: path, detail: "tensor '\(t.name)' given twice") }
            guard t.name.utf8.count <= GGUF.maxNameLength else { throw GGUFWriterError.invalid(path: path, detail: "tensor name '\(t.name)' is longer than 63 bytes") }
            guard t.shape.count <= GGUF.maxDimensions else { throw GGUFWriterError.invalid(path: path, detail: "tensor '\(t.name)' has more than 4 dimensions") }
            guard let type = t.ggmlType else { throw GGUFWriterError.invalid(path: path, detail: "tensor '\(t.name)': GGUF has no \(t.type.name) type") }
            let elements = TensorInfo.elementCount(of: t.shape)
            guard (t.shape.last ?? 1) % type.blockElements == 0,
                  elements / type.blockElements * type.blockBytes == t.byteCount else {
                throw GGUFWriterError.invalid(path: path, detail: "tensor '\(t.name)': \(t.byteCount) bytes do not hold shape \(t.shape) of \(type.name)")
            }
        }
        var groups: [[OutputTensor]] = [[]]
        if let counts {
            guard counts.reduce(0, +) == tensors.count, counts.allSatisfy({ $0 > 0 }) else {
                throw GGUFWriterError.invalid(path: path, detail: "split layout \(counts) does not cover \(tensors.count) tensors")
            }
            var start = 0
            groups = counts.map { n in defer { start += n }; return Array(tensors[start..<(start + n)]) }
        } else {
            // gguf-py: a new part starts when the next tensor would push the current one over the limit.
            var size = 0
            for t in tensors {
                if let limit = maxShardBytes, !groups[groups.count - 1].isEmpty, size + t.byteCount > limit {
                    groups.append([])
                    size = 0
                }
                groups[groups.count - 1].append(t)
                size += t.byteCount
            }
        }
        if groups.count == 1 { return [Part(path: path, metadata: metadata, tensors: groups[0])] }
        let stem = path.hasSuffix(".gguf") ? String(path.dropLast(5)) : path
        // gguf-py pads every part to a custom alignment but records it in the first part only,
        // which leaves the other parts unreadable; nopekit repeats `general.alignment` in them.
        let alignmentKey = metadata.filter { $0.key == GGUF.Key.alignment }
        return groups.enumerated().map { i, group in
            let split = [
                GGUFKeyValue(GGUF.Key.splitNumber, .uint16(UInt16(i))),
                GGUFKeyValue(GGUF.Key.splitCount, .uint16(UInt16(groups.count))),
                GGUFKeyValue(GGUF.Key.splitTensorCount, .int32(Int32(tensors.count))),
            ]
            return Part(path: stem + String(format: "-%05d-of-%05d.gguf", i + 1, groups.count),
                        metadata: (i == 0 ? metadata : alignmentKey) + split, tensors: group)
        }
    }

    /// Writes `metadata` and `tensors` to `path` (or its split parts). `progress` is called after
    /// each tensor with (bytes written, total bytes).
    ///
    /// `late` gives metadata known only after the tensor bytes are written (a checksum computed
    /// alongside): the first part's header is written with the placeholder values in `metadata`
    /// and rewritten in place before anything is published; each value must keep its
    /// placeholder's encoded length.
    /// `path.sha256` beside them records their checksums (`ChecksumManifest`).
    /// Returns the paths written: `path`, or the parts of a split.
    @discardableResult
    public static func write(metadata: [GGUFKeyValue], tensors: [OutputTensor], to path: String,
                             maxShardBytes: Int? = nil, groups: [Int]? = nil, late: (() throws -> [GGUFKeyValue])? = nil,
                             progress: ((Int, Int) -> Void)? = nil) throws -> [String] {
        let parts = try plan(metadata: metadata, tensors: tensors, to: path, maxShardBytes: maxShardBytes, groups: groups)
        let alignment = metadata[GGUF.Key.alignment]?.intValue ?? GGUF.defaultAlignment
        let outputs = try parts.map { try AtomicOutput(finalPath: $0.path, kind: .file) }
        let total = tensors.reduce(0) { $0 + $1.byteCount }
        var done = 0
        for (index, (part, output)) in zip(parts, outputs).enumerated() {
            let file = try OutputFile(creating: output.temporaryPath, rewritesHeader: index == 0 && late != nil)
            let header = headerBytes(part, alignment: alignment)
            try file.write(header)
            for t in part.tensors {
                try file.append(t)
                let produced = t.byteCount
                try file.write([UInt8](repeating: 0, count: GGUFHeader.alignUp(produced, alignment) - produced))
                done += produced
                progress?(done, total)
            }
            if index == 0, let late {
                var final = part
                let values = try late()
                final.metadata = part.metadata.map { kv in values.first { $0.key == kv.key } ?? kv }
                let bytes = headerBytes(final, alignment: alignment)
                guard bytes.count == header.count else {
                    throw GGUFWriterError.invalid(path: part.path, detail: "a late metadata value changed length (internal error)")
                }
                try file.overwrite(bytes, at: 0)
            }
            try file.finish()
        }
        ChecksumManifest.removeStaleSidecar(of: path)
        for output in outputs { try output.commit() }
        try ChecksumManifest.writeSidecar(for: path, files: outputs.map(\.finalPath))
        return parts.map(\.path)
    }

    /// Header, metadata, tensor infos and the padding up to the data section.
    static func headerBytes(_ part: Part, alignment: Int) -> [UInt8] {
        var out = ByteWriter()
        out.bytes += GGUF.magic
        out.u32(GGUF.writtenVersion)
        out.u64(UInt64(part.tensors.count))
        out.u64(UInt64(part.metadata.count))
        for kv in part.metadata {
            out.string(Array(kv.key.utf8))
            out.u32(kv.value.type.rawValue)
            out.value(kv.value)
        }
        var offset = 0
        for t in part.tensors {
            out.string(Array(t.name.utf8))
            out.u32(UInt32(t.shape.count))
            for d in t.shape.reversed() { out.u64(UInt64(d)) }
            out.u32(t.ggmlType!.rawValue)  // checked by `plan`
            out.u64(UInt64(offset))
            offset += GGUFHeader.alignUp(t.byteCount, alignment)
        }
        // Padded to the alignment even without tensors, as gguf-py writes it.
        out.bytes += [UInt8](repeating: 0, count: GGUFHeader.alignUp(out.bytes.count, alignment) - out.bytes.count)
        return out.bytes
    }

    struct ByteWriter {
        var bytes: [UInt8] = []

        mutating func int<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        mutating func u32(_ v: UInt32) { int(v) }
        mutating func u64(_ v: UInt64) { int(v) }
        mutating func string(_ s: [UInt8]) { u64(UInt64(s.count)); bytes += s }

        mutating func value(_ v: GGUFValue) {
            switch v {
            case .uint8(let x): int(x)
            case .int8(let x): int(x)
            case .uint16(let x): int(x)
            case .int16(let x): int(x)
            case .uint32(let x): int(x)
            case .int32(let x): int(x)
            case .uint64(let x): int(x)
            case .int64(let x): int(x)
            case .float32(let x): int(x.bitPattern)
            case .float64(let x): int(x.bitPattern)
            case .bool(let b): int(UInt8(b ? 1 : 0))
            case .string(let s): string(Array(s.utf8))
            case .bytes(let b): string(b)
            case .array(let items):
                u32(items.elementType.rawValue)
                u64(UInt64(items.count))
                if let packed = items.packedBytes { bytes += packed } else { for item in items { value(item) } }
            }
        }
    }
}

public enum GGUFWriterError: Error, CustomStringConvertible, Equatable {
    case invalid(path: String, detail: String)

    public var description: String {
        switch self {
        case .invalid(let p, let d): return "\(p): cannot write GGUF: \(d); nothing was written"
        }
    }
}
