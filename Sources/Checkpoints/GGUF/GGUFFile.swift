import Foundation

/// A memory-mapped GGUF file, or a set of llama.cpp split files (`name-00001-of-00003.gguf`)
/// opened as one model.
///
/// Shapes are converted from ggml order (`ne[0]` innermost) to HF order here, at the format
/// boundary, and nowhere else: a tensor with `ne = [2048, 32000]` reports shape `[32000, 2048]`.
public final class GGUFFile: TensorStore {
    public let path: String
    /// Headers of every part, in split order (one for an unsplit file).
    public let parts: [GGUFHeader]
    public let partPaths: [String]
    public let tensors: [TensorInfo]
    private let maps: [MappedFile]
    private let byName: [String: (part: Int, index: Int, entry: Int)]

    public var sourcePath: String { path }
    public var mapsFiles: Bool { true }
    /// The first part's header: version, alignment.
    public var header: GGUFHeader { parts[0] }
    /// Metadata of the first part (where llama.cpp and gguf-py put all of it), without the
    /// `split.*` bookkeeping keys.
    public var metadata: [GGUFKeyValue] { parts[0].metadata.filter { !$0.key.hasPrefix("split.") } }

    /// Opens `path`. If it is the first part of a split (`-00001-of-0000N.gguf` and
    /// `split.count` > 1), every part is opened and checked to belong.
    public init(path: String) throws {
        self.path = path
        let first = try MappedFile(path: path)
        let firstHeader = try GGUFHeader.parse(first.bytes, file: path)
        var parts = [firstHeader], maps = [first], paths = [path]
        if let count = firstHeader.metadata[GGUF.Key.splitCount]?.intValue, count > 1 {
            let number = firstHeader.metadata[GGUF.Key.splitNumber]?.intValue ?? 0
            guard number == 0 else {
                throw GGUFError.invalidSplit(file: path, detail: "this is split part \(number + 1) of \(count); open the first part (…-00001-of-\(String(format: "%05d", count)).gguf)")
            }
            for i in 1..<count {
                let partPath = try Self.splitPath(first: path, index: i, count: count)
                let map = try MappedFile(path: partPath)
                let h = try GGUFHeader.parse(map.bytes, file: partPath)
                guard h.metadata[GGUF.Key.splitNumber]?.intValue == i, h.metadata[GGUF.Key.splitCount]?.intValue == count else {
                    throw GGUFError.invalidSplit(file: partPath, detail: "split.no/split.count say it is not part \(i + 1) of \(count)")
                }
                parts.append(h); maps.append(map); paths.append(partPath)
            }
            let total = parts.reduce(0) { $0 + $1.tensors.count }
            if let declared = firstHeader.metadata[GGUF.Key.splitTensorCount]?.intValue, declared != total {
                throw GGUFError.invalidSplit(file: path, detail: "split.tensors.count is \(declared) but the parts hold \(total) tensors")
            }
        }
        self.parts = parts
        self.maps = maps
        self.partPaths = paths
        var all: [TensorInfo] = []
        var byName: [String: (part: Int, index: Int, entry: Int)] = [:]
        for (p, h) in parts.enumerated() {
            for (i, t) in h.tensors.enumerated() {
                guard byName[t.name] == nil else { throw GGUFError.duplicateTensor(file: paths[p], name: t.name) }
                byName[t.name] = (p, all.count, i)
                all.append(TensorInfo(name: t.name, type: TensorType(ggml: t.type), shape: t.shape, byteCount: t.byteCount,
                                      file: paths[p], fileOffset: h.dataStart + t.offset))
            }
        }
        tensors = all
        self.byName = byName
    }

    /// `model-00001-of-00003.gguf` → `model-0000{index+1}-of-00003.gguf`.
    static func splitPath(first: String, index: Int, count: Int) throws -> String {
        let suffix = String(format: "-%05d-of-%05d.gguf", 1, count)
        guard first.hasSuffix(suffix) else {
            throw GGUFError.invalidSplit(file: first, detail: "split.count is \(count) but the name does not end in \(suffix)")
        }
        return String(first.dropLast(suffix.count)) + String(format: "-%05d-of-%05d.gguf", index + 1, count)
    }

    public func lookup(_ name: String) -> TensorInfo? { byName[name].map { tensors[$0.index] } }

    /// The ggml entry (type, ne, offset) of a tensor.
    public func entry(_ name: String) -> GGUFHeader.TensorEntry? {
        guard let at = byName[name] else { return nil }
        return parts[at.part].tensors[at.entry]
    }

    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let at = byName[name] else { throw TensorStoreError.tensorNotFound(name: name, source: path) }
        let t = tensors[at.index]
        return try body(UnsafeRawBufferPointer(rebasing: maps[at.part].bytes[t.fileOffset..<(t.fileOffset + t.byteCount)]))
    }

    public func releasePages(_ name: String, range: Range<Int>) {
        guard let at = byName[name] else { return }
        let t = tensors[at.index]
        maps[at.part].release((t.fileOffset + range.lowerBound)..<(t.fileOffset + range.upperBound))
    }

    /// Total bytes of all parts.
    public var fileBytes: Int { maps.reduce(0) { $0 + $1.size } }
}
