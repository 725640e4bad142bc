import Foundation

/// A Hugging Face checkpoint folder: `model.safetensors`, or shards listed by
/// `model.safetensors.index.json`. Every shard is mapped (lazily: a map costs no memory until
/// read) and its header validated; the index is checked against the shards (`ShardSet`).
public final class ShardedSafetensors: TensorStore, ShardFormat {
    public static let indexFileName = "model.safetensors.index.json"
    public static let singleFileName = "model.safetensors"

    private let shardSet: ShardSet<ShardedSafetensors>

    public var folder: String { shardSet.folder }
    /// Shard files in name order (or the single file).
    public var shards: [SafetensorsFile] { shardSet.shards }
    public var tensors: [TensorInfo] { shardSet.tensors }
    /// `metadata` of the index file, if there is one.
    public var indexMetadata: JSONValue? { shardSet.indexMetadata }
    public var sourcePath: String { shardSet.folder }
    public var mapsFiles: Bool { true }

    public init(folder: String) throws { shardSet = try ShardSet(folder: folder) }

    public func lookup(_ name: String) -> TensorInfo? { shardSet.lookup(name) }
    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R { try shardSet.withRawBytes(name, body) }
    public func releasePages(_ name: String, range: Range<Int>) { shardSet.releasePages(name, range: range) }

    /// Total bytes of all shard files.
    public var totalFileBytes: Int { shards.reduce(0) { $0 + $1.fileSize } }

    static func openShard(_ path: String) throws -> SafetensorsFile { try SafetensorsFile(path: path) }
    static func noCheckpoint(folder: String) -> any Error { SafetensorsError.noCheckpoint(folder: folder) }
    static func invalidIndex(file: String, detail: String) -> any Error { SafetensorsError.invalidIndex(file: file, detail: detail) }
    static func staleIndex(folder: String, detail: String) -> any Error { SafetensorsError.staleIndex(folder: folder, detail: detail) }
    static func duplicateAcrossShards(folder: String, name: String, shards: [String]) -> any Error {
        SafetensorsError.duplicateAcrossShards(folder: folder, name: name, shards: shards)
    }
}
