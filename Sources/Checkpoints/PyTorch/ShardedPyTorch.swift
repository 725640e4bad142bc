import Foundation

/// A Hugging Face checkpoint folder in PyTorch format: `pytorch_model.bin`, or shards listed by
/// `pytorch_model.bin.index.json` (transformers' `pytorch_model-00001-of-00002.bin`, ...). Every
/// shard's pickle is read (no tensor bytes); the index is checked against the shards exactly as
/// for safetensors (`ShardSet`).
public final class ShardedPyTorch: TensorStore, ShardFormat {
    public static let indexFileName = "pytorch_model.bin.index.json"
    public static let singleFileName = "pytorch_model.bin"

    private let shardSet: ShardSet<ShardedPyTorch>

    public var folder: String { shardSet.folder }
    /// Shard files in name order (or the single file).
    public var shards: [PyTorchFile] { shardSet.shards }
    public var tensors: [TensorInfo] { shardSet.tensors }
    /// `metadata` of the index file, if there is one.
    public var indexMetadata: JSONValue? { shardSet.indexMetadata }
    public var sourcePath: String { shardSet.folder }
    /// True when every shard maps every tensor (see `PyTorchFile.mapsFiles`).
    public var mapsFiles: Bool { shards.allSatisfy(\.mapsFiles) }

    public init(folder: String) throws { shardSet = try ShardSet(folder: folder) }

    public func lookup(_ name: String) -> TensorInfo? { shardSet.lookup(name) }
    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R { try shardSet.withRawBytes(name, body) }
    public func releasePages(_ name: String, range: Range<Int>) { shardSet.releasePages(name, range: range) }

    /// Whether `name`'s bytes are read straight from its shard's map.
    public func isMapped(_ name: String) -> Bool {
        shardSet.byName[name].map { shards[$0.shard].isMapped(name) } ?? false
    }

    /// Total bytes of all shard files.
    public var totalFileBytes: Int { shards.reduce(0) { $0 + $1.fileSize } }

    static func openShard(_ path: String) throws -> PyTorchFile { try PyTorchFile(path: path) }
    static func noCheckpoint(folder: String) -> any Error { PyTorchError.noCheckpoint(folder: folder) }
    static func invalidIndex(file: String, detail: String) -> any Error { PyTorchError.invalidIndex(file: file, detail: detail) }
    static func staleIndex(folder: String, detail: String) -> any Error { PyTorchError.staleIndex(folder: folder, detail: detail) }
    static func duplicateAcrossShards(folder: String, name: String, shards: [String]) -> any Error {
        PyTorchError.duplicateAcrossShards(folder: folder, name: name, shards: shards)
    }
}
