import Foundation

/// Writes safetensors files byte-identical to the reference writer (huggingface/safetensors
/// `serialize`): tensors sorted by dtype rank descending, then by name (byte order); offsets
/// back to back; compact JSON with `__metadata__` first (keys sorted) and each entry as
/// `dtype, shape, data_offsets`; the header padded with spaces to a multiple of 8.
public enum SafetensorsWriter {

    /// The reference writer's tensor order.
    public static func referenceOrder(_ tensors: [OutputTensor]) -> [OutputTensor] {
        tensors.sorted { a, b in
            if a.dtype != b.dtype { return a.dtype! > b.dtype! }
            return Array(a.name.utf8).lexicographicallyPrecedes(Array(b.name.utf8))
        }
    }

    /// Header bytes (`u64 N` + padded JSON) for tensors already in reference order.
    public static func header(for ordered: [OutputTensor], metadata: [String: String]) -> [UInt8] {
        var members: [JSONMember] = []
        let sortedMeta = metadata.sorted { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }
        members.append(JSONMember("__metadata__", .object(sortedMeta.map { JSONMember($0.key, .string($0.value)) })))
        var offset = 0
        for t in ordered {
            members.append(JSONMember(t.name, .object([
                JSONMember("dtype", .string(t.type.name)),
                JSONMember("shape", .array(t.shape.map { .int($0) })),
                JSONMember("data_offsets", .array([.int(offset), .int(offset + t.byteCount)])),
            ])))
            offset += t.byteCount
        }
        var json = Array(JSONWriter.compact(.object(members)).utf8)
        json.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8))
        var out = withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) }
        out.append(contentsOf: json)
        return out
    }

    /// Metadata values known only after the tensor bytes are written (a checksum computed
    /// alongside), merged over `metadata`. The header is first written with the placeholder
    /// values given in `metadata` and rewritten in place before the file is published, so every
    /// final value must have its placeholder's length.
    public typealias LateMetadata = () throws -> [String: String]

    /// Writes one file at `path` (atomically: temporary name, then rename), and its checksum
    /// record `path.sha256` beside it (`ChecksumManifest`) unless `checksumFile` is false (a
    /// file inside a folder that records its own).
    /// `progress` is called after each tensor with its byte count.
    public static func write(_ tensors: [OutputTensor], metadata: [String: String], late: LateMetadata? = nil,
                             to path: String, checksumFile: Bool = true, progress: ((Int) -> Void)? = nil) throws {
        let output = try AtomicOutput(finalPath: path, kind: .file)
        try writeShard(tensors, metadata: metadata, late: late, to: output.temporaryPath, progress: progress)
        if checksumFile { ChecksumManifest.removeStaleSidecar(of: output.finalPath) }
        try output.commit()
        if checksumFile { try ChecksumManifest.writeSidecar(for: output.finalPath, files: [output.finalPath]) }
    }

    /// Writes the bytes of one shard to `path` (which must not exist).
    static func writeShard(_ tensors: [OutputTensor], metadata: [String: String], late: LateMetadata? = nil,
                           to path: String, progress: ((Int) -> Void)? = nil) throws {
        if let q = tensors.first(where: { $0.dtype == nil }) {
            throw WriterError.notPlain(path: path, tensor: q.name, type: q.type.name)
        }
        let ordered = referenceOrder(tensors)
        if let dup = duplicateName(ordered) {
            throw WriterError.duplicateName(path: path, name: dup)
        }
        let headerBytes = header(for: ordered, metadata: metadata)
        guard UInt64(headerBytes.count - 8) <= SafetensorsHeader.maxHeaderLength else {
            throw WriterError.headerTooLarge(path: path)
        }
        let file = try OutputFile(creating: path, rewritesHeader: late != nil)
        try file.write(headerBytes)
        for t in ordered {
            try file.append(t)
            progress?(t.byteCount)
        }
        if let late {
            let final = header(for: ordered, metadata: metadata.merging(try late()) { $1 })
            guard final.count == headerBytes.count else { throw WriterError.lateMetadataLength(path: path) }
            try file.overwrite(final, at: 0)
        }
        try file.finish()
    }

    static func duplicateName(_ tensors: [OutputTensor]) -> String? {
        var seen = Set<String>()
        for t in tensors where !seen.insert(t.name).inserted { return t.name }
        return nil
    }

    // MARK: - Sharded folders

    /// Splits tensors (in the given order) into shards of at most `maxShardBytes` tensor bytes,
    /// with huggingface_hub's rule (`split_state_dict_into_shards_factory`): a tensor larger than
    /// the limit gets a shard of its own; otherwise a new shard starts when the next tensor would
    /// tip the current one over the limit.
    public static func planShards(_ tensors: [OutputTensor], maxShardBytes: Int?) -> [[OutputTensor]] {
        guard let limit = maxShardBytes else { return tensors.isEmpty ? [] : [tensors] }
        var shards: [[OutputTensor]] = []
        var current: [OutputTensor] = []
        var currentSize = 0
        for t in tensors {
            if t.byteCount > limit {
                shards.append([t])
                continue
            }
            if currentSize + t.byteCount > limit, !current.isEmpty {
                shards.append(current)
                current = []
                currentSize = 0
            }
            current.append(t)
            currentSize += t.byteCount
        }
        if !current.isEmpty { shards.append(current) }
        return shards
    }

    /// The Hugging Face shard file name, e.g. `model-00002-of-00005.safetensors`.
    public static func shardName(_ index: Int, of count: Int) -> String {
        count == 1 ? ShardedSafetensors.singleFileName
            : String(format: "model-%05d-of-%05d.safetensors", index + 1, count)
    }

    /// The index file text exactly as transformers writes it (`json.dumps(indent=2,
    /// sort_keys=True)` plus a newline). `total_size` counts tensor bytes, not file bytes.
    public static func indexJSON(shards: [(file: String, tensors: [OutputTensor])]) -> String {
        var weightMap: [JSONMember] = []
        var total = 0
        var parameters = 0
        for shard in shards {
            for t in shard.tensors {
                weightMap.append(JSONMember(t.name, .string(shard.file)))
                total += t.byteCount
                parameters += TensorInfo.elementCount(of: t.shape)
            }
        }
        let index = JSONValue.object([
            JSONMember("metadata", .object([
                JSONMember("total_parameters", .int(parameters)),
                JSONMember("total_size", .int(total)),
            ])),
            JSONMember("weight_map", .object(weightMap)),
        ])
        return JSONWriter.pretty(index) + "\n"
    }

    /// Writes an HF checkpoint folder at `folder`: shards (or a single `model.safetensors`), the
    /// index when there is more than one shard, and `extraFiles` (config.json, tokenizer files…).
    /// The folder is assembled under a temporary name and renamed into place when complete.
    /// `progress` is called after each tensor with (bytes written so far, total bytes).
    public static func writeFolder(_ tensors: [OutputTensor], metadata: [String: String], late: LateMetadata? = nil, to folder: String,
                                   maxShardBytes: Int?, extraFiles: () throws -> [(name: String, contents: [UInt8])] = { [] },
                                   progress: ((Int, Int) -> Void)? = nil) throws {
        let planned = planShards(tensors, maxShardBytes: maxShardBytes)
        let named = planned.enumerated().map { (file: shardName($0.offset, of: planned.count), tensors: $0.element) }
        try writeFolder(shards: named, index: named.count > 1 ? Array(indexJSON(shards: named).utf8) : nil,
                        metadata: { _ in metadata }, late: late, to: folder, extraFiles: extraFiles, progress: progress)
    }

    /// Writes an HF checkpoint folder with the given shard files (names and contents), `index`
    /// as `model.safetensors.index.json` when given, and `extraFiles`, which are produced after
    /// the shards (so they may record what writing them computed). Each shard's header gets
    /// `metadata(i)`, with `late` values as `write` describes.
    public static func writeFolder(shards: [(file: String, tensors: [OutputTensor])], index: [UInt8]?,
                                   metadata: (Int) -> [String: String], late: LateMetadata? = nil, to folder: String,
                                   extraFiles: () throws -> [(name: String, contents: [UInt8])] = { [] },
                                   progress: ((Int, Int) -> Void)? = nil) throws {
        if let dup = duplicateName(shards.flatMap(\.tensors)) { throw WriterError.duplicateName(path: folder, name: dup) }
        let output = try AtomicOutput(finalPath: folder, kind: .directory)
        let total = shards.reduce(0) { $0 + $1.tensors.reduce(0) { $0 + $1.byteCount } }
        var done = 0
        for (i, shard) in shards.enumerated() {
            try writeShard(shard.tensors, metadata: metadata(i), late: late, to: output.temporaryChild(shard.file)) { bytes in
                done += bytes
                progress?(done, total)
            }
        }
        if let index { try writeSmallFile(index, to: output.temporaryChild(ShardedSafetensors.indexFileName)) }
        for extra in try extraFiles() {
            try writeSmallFile(extra.contents, to: output.temporaryChild(extra.name))
        }
        try output.commit()
    }

    static func writeSmallFile(_ bytes: [UInt8], to path: String) throws {
        let f = try OutputFile(creating: path)
        try f.write(bytes)
        try f.finish()
    }
}

public enum WriterError: Error, CustomStringConvertible, Equatable {
    case duplicateName(path: String, name: String)
    case headerTooLarge(path: String)
    case sizeMismatch(path: String, tensor: String, expected: Int, produced: Int)
    case notPlain(path: String, tensor: String, type: String)
    case lateMetadataLength(path: String)

    public var description: String {
        switch self {
        case .duplicateName(let p, let n): return "\(p): two tensors named '\(n)'; nothing was written"
        case .headerTooLarge(let p): return "\(p): the header would exceed 100,000,000 bytes; split the output with --max-shard-size"
        case .sizeMismatch(let p, let t, let e, let n): return "\(p): tensor '\(t)' produced \(n) bytes, expected \(e) (internal error; nothing was left behind)"
        case .notPlain(let p, let t, let type): return "\(p): tensor '\(t)' is \(type) blocks, which safetensors cannot store; give a float --dtype to dequantise"
        case .lateMetadataLength(let p): return "\(p): a late metadata value differs in length from its placeholder (internal error; nothing was left behind)"
        }
    }
}
