/// One memory-mapped safetensors file.
///
/// Opening maps the file and validates the header; no tensor byte is read until asked for.
public final class SafetensorsFile: TensorStore {
    public let path: String
    public let header: SafetensorsHeader
    public let tensors: [TensorInfo]
    private let mapped: MappedFile
    private let byName: [String: Int]

    public var sourcePath: String { path }
    public var mapsFiles: Bool { true }
    public var fileSize: Int { mapped.size }

    public init(path: String) throws {
        self.path = path
        mapped = try MappedFile(path: path)
        header = try SafetensorsHeader.parse(mapped.bytes, fileSize: mapped.size, file: path)
        let start = header.dataStart
        tensors = header.entries.map {
            TensorInfo(name: $0.name, dtype: $0.dtype, shape: $0.shape, byteCount: $0.end - $0.begin,
                       file: path, fileOffset: start + $0.begin)
        }
        byName = Dictionary(uniqueKeysWithValues: tensors.enumerated().map { ($1.name, $0) })
    }

    public func lookup(_ name: String) -> TensorInfo? { byName[name].map { tensors[$0] } }

    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let t = try info(name)
        return try body(UnsafeRawBufferPointer(rebasing: mapped.bytes[t.fileOffset..<(t.fileOffset + t.byteCount)]))
    }

    public func releasePages(_ name: String, range: Range<Int>) {
        guard let t = lookup(name) else { return }
        mapped.release((t.fileOffset + range.lowerBound)..<(t.fileOffset + range.upperBound))
    }

    /// The `__metadata__` map of the file.
    public var metadata: [(key: String, value: String)] { header.metadata ?? [] }
}
