import Foundation

/// What one sharded checkpoint format calls its files and how it opens and reports them:
/// safetensors (`model.safetensors.index.json`) and PyTorch (`pytorch_model.bin.index.json`)
/// differ only here.
protocol ShardFormat {
    associatedtype Shard: TensorStore
    static var indexFileName: String { get }
    static var singleFileName: String { get }
    static func openShard(_ path: String) throws -> Shard
    static func noCheckpoint(folder: String) -> any Error
    static func invalidIndex(file: String, detail: String) -> any Error
    static func staleIndex(folder: String, detail: String) -> any Error
    static func duplicateAcrossShards(folder: String, name: String, shards: [String]) -> any Error
}

/// The shards of a Hugging Face folder: the single file, or those its index lists
/// (`{"metadata": {"total_size": …}, "weight_map": {name: file}}`), each opened (headers only),
/// with names routed to their shard.
///
/// The index must agree with the shards exactly: a tensor the index names that no shard holds,
/// or one a shard holds that the index does not name, is an error naming the tensor.
/// Repositories with a stale index exist in the wild (mlx-swift-lm's loader documents falling
/// back for them); nopekit refuses instead of guessing which side is right.
struct ShardSet<Format: ShardFormat> {
    let folder: String
    /// Shard files in name order (or the single file).
    let shards: [Format.Shard]
    let tensors: [TensorInfo]
    /// `metadata` of the index file, if there is one.
    let indexMetadata: JSONValue?
    let byName: [String: (shard: Int, tensor: TensorInfo)]

    init(folder: String) throws {
        self.folder = folder
        let fm = FileManager.default
        let indexPath = (folder as NSString).appendingPathComponent(Format.indexFileName)
        let singlePath = (folder as NSString).appendingPathComponent(Format.singleFileName)
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
                    throw Format.invalidIndex(file: indexPath, detail: "weight_map entry '\(m.key)' is not a file name")
                }
                if seen.insert(file).inserted { shardFiles.append(file) }
            }
            shardFiles.sort()
        } else if fm.fileExists(atPath: singlePath) {
            shardFiles = [Format.singleFileName]
            indexMetadata = nil
        } else {
            throw Format.noCheckpoint(folder: folder)
        }

        var shards: [Format.Shard] = []
        for file in shardFiles {
            guard !file.contains("/"), file != "..", file != "." else {
                throw Format.invalidIndex(file: indexPath, detail: "shard name '\(file)' must be a plain file name in the folder")
            }
            let path = (folder as NSString).appendingPathComponent(file)
            guard fm.fileExists(atPath: path) else {
                let example = weightMap?.first(where: { $0.value.stringValue == file })?.key ?? "?"
                throw Format.staleIndex(folder: folder, detail: "shard '\(file)' (holding '\(example)' per the index) does not exist")
            }
            shards.append(try Format.openShard(path))
        }
        self.shards = shards

        var byName: [String: (shard: Int, tensor: TensorInfo)] = [:]
        var all: [TensorInfo] = []
        for (i, shard) in shards.enumerated() {
            for t in shard.tensors {
                if let previous = byName[t.name] {
                    throw Format.duplicateAcrossShards(folder: folder, name: t.name, shards: [shardFiles[previous.shard], shardFiles[i]])
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
                    throw Format.staleIndex(folder: folder, detail: "tensor '\(m.key)' is listed in shard '\(claimed)' but no shard holds it")
                }
                guard shardFiles[held.shard] == claimed else {
                    throw Format.staleIndex(folder: folder, detail: "tensor '\(m.key)' is listed in '\(claimed)' but stored in '\(shardFiles[held.shard])'")
                }
            }
            if let extra = all.first(where: { !listed.contains($0.name) }) {
                throw Format.staleIndex(folder: folder, detail: "tensor '\(extra.name)' is stored in '\((extra.file as NSString).lastPathComponent)' but missing from the index")
            }
        }
        tensors = all
        self.byName = byName
    }

    func lookup(_ name: String) -> TensorInfo? { byName[name]?.tensor }

    func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let entry = byName[name] else { throw TensorStoreError.tensorNotFound(name: name, source: folder) }
        return try shards[entry.shard].withRawBytes(name, body)
    }

    func releasePages(_ name: String, range: Range<Int>) {
        guard let entry = byName[name] else { return }
        shards[entry.shard].releasePages(name, range: range)
    }

    static func readIndex(_ path: String) throws -> (metadata: JSONValue?, weightMap: [JSONMember]) {
        let data = try SmallFile.read(path)
        let json: JSONValue
        do { json = try JSONReader.parse(data) } catch let e as JSONSyntaxError {
            throw Format.invalidIndex(file: path, detail: "not valid JSON: \(e)")
        }
        guard let map = json["weight_map"]?.objectValue else {
            throw Format.invalidIndex(file: path, detail: "no 'weight_map' object")
        }
        // An empty map would open no shard at all and yield a checkpoint with no weights.
        guard !map.isEmpty else {
            throw Format.invalidIndex(file: path, detail: "'weight_map' lists no tensor; the index does not describe the shards beside it")
        }
        if let dup = json["weight_map"]?.duplicateKey {
            throw Format.invalidIndex(file: path, detail: "tensor '\(dup)' appears twice in weight_map")
        }
        return (json["metadata"], map)
    }
}
