import Foundation

/// A Hugging Face checkpoint folder in PyTorch format: `pytorch_model.bin`, or shards listed by
/// `pytorch_model.bin.index.json` (`{"metadata": {"total_size": …}, "weight_map": {name: file}}`,
/// the transformers layout `pytorch_model-00001-of-00002.bin`, ...).
///
/// The same rules as `ShardedSafetensors`: every shard is opened (its pickle read, no tensor
/// bytes), names are routed to their shard, and the index must agree with the shards exactly.
/// A tensor the index names that no shard holds, or one a shard holds that the index does not
/// name, is an error naming the tensor; nopekit refuses a stale index instead of guessing.
public final class ShardedPyTorch: TensorStore {
    public static let indexFileName = "pytorch_model.bin.index.json"
    public static let singleFileName = "pytorch_model.bin"

    public let folder: String
    /// Shard files in name order (or the single file).
    public let shards: [PyTorchFile]
    public let tensors: [TensorInfo]
    /// `metadata` of the index file, if there is one.
    public let indexMetadata: JSONValue?
    private let byName: [String: (shard: Int, tensor: TensorInfo)]

    public var sourcePath: String { folder }
    /// True when every shard maps every tensor (see `PyTorchFile.mapsFiles`).
    public var mapsFiles: Bool { shards.allSatisfy(\.mapsFiles) }

    public init(folder: String) throws {
        self.folder = folder
        let fm = FileManager.default
        let indexPath = (folder as NSString).appendingPathComponent(Self.indexFileName)
        let singlePath = (folder as NSString).appendingPathComponent(Self.singleFileName)
        var shardFiles: [String]
        var weightMap: [JSONMember]? = nil
        if fm.fileExists(atPath: indexPath) {
            let index = try Self.readIndex(indexPath)
            weightMap = index.weightMap
            indexMetadata = index.metadata
            shardFiles = []
            var seen = Set<String>()
            for m in index.weightMap {
                guard let file = m.value.stringValue else {
                    throw PyTorchError.invalidIndex(file: indexPath, detail: "weight_map entry '\(m.key)' is not a file name")
                }
                if seen.insert(file).inserted { shardFiles.append(file) }
            }
            shardFiles.sort()
        } else if fm.fileExists(atPath: singlePath) {
            shardFiles = [Self.singleFileName]
            indexMetadata = nil
        } else {
            throw PyTorchError.noCheckpoint(folder: folder)
        }

        var shards: [PyTorchFile] = []
        for file in shardFiles {
            guard !file.contains("/"), file != "..", file != "." else {
                throw PyTorchError.invalidIndex(file: indexPath, detail: "shard name '\(file)' must be a plain file name in the folder")
            }
            let path = (folder as NSString).appendingPathComponent(file)
            guard fm.fileExists(atPath: path) else {
                let example = weightMap?.first(where: { $0.value.stringValue == file })?.key ?? "?"
                throw PyTorchError.staleIndex(folder: folder, detail: "shard '\(file)' (holding '\(example)' per the index) does not exist")
            }
            shards.append(try PyTorchFile(path: path))
        }
        self.shards = shards

        var byName: [String: (shard: Int, tensor: TensorInfo)] = [:]
        var all: [TensorInfo] = []
        for (i, shard) in shards.enumerated() {
            for t in shard.tensors {
                if let previous = byName[t.name] {
                    throw PyTorchError.duplicateAcrossShards(folder: folder, name: t.name, shards: [shardFiles[previous.shard], shardFiles[i]])
                }
                byName[t.name] = (i, t)
                all.append(t)
            }
        }
        if let weightMap {
            var listed = Set<String>()
            for m in weightMap {
                listed.insert(m.key)
                let claimed = m.value.stringValue ?? "?"
                guard let held = byName[m.key] else {
                    throw PyTorchError.staleIndex(folder: folder, detail: "tensor '\(m.key)' is listed in shard '\(claimed)' but no shard holds it")
                }
                guard shardFiles[held.shard] == claimed else {
                    throw PyTorchError.staleIndex(folder: folder, detail: "tensor '\(m.key)' is listed in '\(claimed)' but stored in '\(shardFiles[held.shard])'")
                }
            }
            if let extra = all.first(where: { !listed.contains($0.name) }) {
                throw PyTorchError.staleIndex(folder: folder, detail: "tensor '\(extra.name)' is stored in '\((extra.file as NSString).lastPathComponent)' but missing from the index")
            }
        }
        tensors = all
        self.byName = byName
    }

    public func lookup(_ name: String) -> TensorInfo? { byName[name]?.tensor }

    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let entry = byName[name] else { throw TensorStoreError.tensorNotFound(name: name, source: folder) }
        return try shards[entry.shard].withRawBytes(name, body)
    }

    public func releasePages(_ name: String, range: Range<Int>) {
        guard let entry = byName[name] else { return }
        shards[entry.shard].releasePages(name, range: range)
    }

    /// Whether `name`'s bytes are read straight from its shard's map.
    public func isMapped(_ name: String) -> Bool {
        byName[name].map { shards[$0.shard].isMapped(name) } ?? false
    }

    /// Total bytes of all shard files.
    public var totalFileBytes: Int { shards.reduce(0) { $0 + $1.fileSize } }

    struct Index {
        var metadata: JSONValue?
        var weightMap: [JSONMember]
    }

    static func readIndex(_ path: String) throws -> Index {
        let data = try SmallFile.read(path)
        let json: JSONValue
        do { json = try JSONReader.parse(data) } catch let e as JSONSyntaxError {
            throw PyTorchError.invalidIndex(file: path, detail: "not valid JSON: \(e)")
        }
        guard let map = json["weight_map"]?.objectValue else {
            throw PyTorchError.invalidIndex(file: path, detail: "no 'weight_map' object")
        }
        // An empty map would open no shard at all and yield a checkpoint with no weights.
        guard !map.isEmpty else {
            throw PyTorchError.invalidIndex(file: path, detail: "'weight_map' lists no tensor; the index does not describe the shards beside it")
        }
        if let dup = json["weight_map"]?.duplicateKey {
            throw PyTorchError.invalidIndex(file: path, detail: "tensor '\(dup)' appears twice in weight_map")
        }
        return Index(metadata: json["metadata"], weightMap: map)
    }
}
