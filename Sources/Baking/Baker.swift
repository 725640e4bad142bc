import Checkpoints
import Dispatch
import Foundation

/// Writes a baked checkpoint: every tensor of the source streamed to the output in the
/// source's own format and layout (same shards, same GGUF split, same tensor order), the
/// planned rows scaled, the paper checkpoints' scale vectors dropped, every other byte copied,
/// and provenance added. The source's checksum is computed on a second thread while the
/// tensors are written; the headers that record it are completed in place before the output
/// is renamed into place.
public enum Baker {
    /// What a bake would do, without writing.
    public static func dryRun(_ plan: BakePlan, output: String) -> BakeReport {
        BakeReport(plan: plan, output: output, scaled: plan.edits.map { BakeReport.Scaled(edit: $0, report: nil) },
                   sourceSHA256: nil, copiedFiles: [], skippedFiles: [], written: false)
    }

    /// Bakes `plan` into `output`, which must not exist. Nothing is left at `output` (or beside
    /// it) when this throws.
    /// `checksumCache` remembers source digests between runs (`ChecksumCache`).
    public static func bake(_ plan: BakePlan, to output: String, checksumCache: ChecksumCache = .standard,
                            progress: ((Int, Int) -> Void)? = nil) throws -> BakeReport {
        try checkOutput(output, for: plan.checkpoint)
        let store = plan.checkpoint.store
        let checksum = BackgroundChecksum(files: Array(Set(store.tensors.map(\.file))), cache: checksumCache)
        defer { checksum.finish() }
        let dropped = Set(plan.dropped.map(\.name))
        let view = ScaledStore(plan)
        let written = view.output

        var copiedFiles: [String] = [], skippedFiles: [String] = []
        switch store {
        case let gguf as GGUFFile:
            var metadata = gguf.metadata
            metadata.append(GGUFKeyValue(Provenance.ggufTemperaturesKey, .string(plan.table.compactJSON)))
            metadata.append(GGUFKeyValue(Provenance.ggufSourceKey, .string(checksum.valueOrPlaceholder)))
            let kept = gguf.tensors.filter { !dropped.contains($0.name) }
            let groups = gguf.partPaths.count > 1
                ? gguf.partPaths.map { part in kept.filter { $0.file == part }.count }.filter { $0 > 0 } : nil
            try GGUFWriter.write(metadata: metadata, tensors: kept.map(written), to: output, groups: groups,
                                 late: checksum.late { [GGUFKeyValue(Provenance.ggufSourceKey, .string($0))] },
                                 progress: progress)
        case let file as SafetensorsFile:
            try SafetensorsWriter.write(file.tensors.filter { !dropped.contains($0.name) }.map(written),
                                        metadata: metadata(of: file, plan.table, checksum), late: checksum.late { [Provenance.sourceKey: $0] },
                                        to: output)
        case let folder as ShardedSafetensors:
            let shards = folder.shards.map { shard in
                (file: (shard.path as NSString).lastPathComponent, tensors: shard.tensors.filter { !dropped.contains($0.name) }.map(written))
            }.filter { !$0.tensors.isEmpty }
            let indexPath = (folder.folder as NSString).appendingPathComponent(ShardedSafetensors.indexFileName)
            let index: [UInt8]?
            if dropped.isEmpty, FileManager.default.fileExists(atPath: indexPath) {
                index = try SmallFile.read(indexPath)
            } else {
                index = shards.count > 1 ? Array(SafetensorsWriter.indexJSON(shards: shards).utf8) : nil
            }
            try SafetensorsWriter.writeFolder(
                shards: shards, index: index, metadata: { metadata(of: folder.shards[$0], plan.table, checksum) },
                late: checksum.late { [Provenance.sourceKey: $0] }, to: output,
                extraFiles: {
                    let files = try companionFiles(plan, checksum: try checksum.wait(), weights: Set(folder.shards.map(\.path)))
                    copiedFiles = files.copied.map(\.name)
                    skippedFiles = files.skipped
                    return files.copied
                },
                progress: progress)
        default:
            throw BakeError.unsupportedOutput(output: output, detail: "baking reads safetensors and GGUF checkpoints")
        }
        return BakeReport(plan: plan, output: output,
                          scaled: view.scaledReports,
                          sourceSHA256: try checksum.wait(), copiedFiles: copiedFiles, skippedFiles: skippedFiles, written: true)
    }

    /// The shard's own `__metadata__` plus the provenance keys (the checksum perhaps still a
    /// placeholder).
    static func metadata(of file: SafetensorsFile, _ table: TemperatureTable, _ checksum: BackgroundChecksum) -> [String: String] {
        var m: [String: String] = [:]
        for entry in file.header.metadata ?? [] { m[entry.key] = entry.value }
        m[Provenance.temperaturesKey] = table.compactJSON
        m[Provenance.sourceKey] = checksum.valueOrPlaceholder
        return m
    }

    /// File extensions of weights: never copied beside baked shards, since they would carry
    /// the unpatched model.
    static let weightExtensions: Set<String> = ["safetensors", "bin", "pt", "pth", "ckpt", "gguf", "h5", "msgpack", "onnx"]

    /// config.json with the provenance added, and every other regular file of the source folder
    /// byte for byte (tokenizer, generation config, README…). Subfolders and other weight files
    /// are skipped and reported, as are links that lead outside the folder and non-regular files.
    static func companionFiles(_ plan: BakePlan, checksum: String, weights: Set<String>)
        throws -> (copied: [(name: String, contents: [UInt8])], skipped: [String]) {
        let folder = plan.checkpoint.folder
        let fm = FileManager.default
        var copied: [(name: String, contents: [UInt8])] = []
        var skipped: [String] = []
        for name in try fm.contentsOfDirectory(atPath: folder).sorted() where !name.hasPrefix(".") {
            let path = (folder as NSString).appendingPathComponent(name)
            var isDir: ObjCBool = false
            _ = fm.fileExists(atPath: path, isDirectory: &isDir)
            if weights.contains(path) || name == ShardedSafetensors.indexFileName { continue }
            if isDir.boolValue || weightExtensions.contains((name as NSString).pathExtension.lowercased()) {
                skipped.append(name)
                continue
            }
            guard isContainedRegularFile(path, in: folder) else {
                skipped.append(name + " (a link outside the model folder, or not a regular file)")
                continue
            }
            var bytes = try SmallFile.read(path)
            if name == "config.json" { bytes = try configWithProvenance(bytes, file: path, table: plan.table, checksum: checksum) }
            copied.append((name, bytes))
        }
        return (copied, skipped)
    }

    /// Whether `path` is, after following links, a regular file inside `folder`, or inside the
    /// `blobs` folder of a Hugging Face cache when `folder` is one of its `snapshots/<revision>`
    /// (where every file is a link to a blob). A `special_tokens_map.json` linked to
    /// `/etc/passwd`, a FIFO or a device must not be copied into a model others will download.
    static func isContainedRegularFile(_ path: String, in folder: String) -> Bool {
        let root = URL(fileURLWithPath: folder).resolvingSymlinksInPath().standardizedFileURL
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().standardizedFileURL.path
        var allowed = [root.path]
        if root.deletingLastPathComponent().lastPathComponent == "snapshots" {
            allowed.append(root.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("blobs").path)
        }
        guard allowed.contains(where: { resolved.hasPrefix($0 + "/") }) else { return false }
        let type = (try? FileManager.default.attributesOfItem(atPath: resolved))?[.type] as? FileAttributeType
        return type == .typeRegular
    }

    public static func configWithProvenance(_ bytes: [UInt8], file: String, table: TemperatureTable, checksum: String) throws -> [UInt8] {
        guard case .object(var members) = try JSONReader.parse(bytes) else {
            throw ModelConfigError.unreadable(file: file, detail: "not a JSON object")
        }
        members.removeAll { $0.key == Provenance.temperaturesKey || $0.key == Provenance.sourceKey }
        members.append(JSONMember(Provenance.temperaturesKey, table.json))
        members.append(JSONMember(Provenance.sourceKey, .string(checksum)))
        return Array((JSONWriter.pretty(.object(members)) + "\n").utf8)
    }

    /// Refuses an output that is the input, inside it, or one of its files.
    public static func checkOutsideInput(_ output: String, for checkpoint: Checkpoint) throws {
        func resolved(_ p: String) -> String { URL(fileURLWithPath: p).standardizedFileURL.resolvingSymlinksInPath().path }
        let out = resolved(output)
        let input = resolved(checkpoint.path)
        if out == input || out.hasPrefix(input + "/") { throw BakeError.outputInsideInput(output: output, input: checkpoint.path) }
        for part in Set(checkpoint.store.tensors.map(\.file)) where resolved(part) == out {
            throw BakeError.outputInsideInput(output: output, input: part)
        }
    }

    /// Refuses an output that is the input or inside it, or whose name does not fit the format.
    static func checkOutput(_ output: String, for checkpoint: Checkpoint) throws {
        try checkOutsideInput(output, for: checkpoint)
        switch checkpoint.format {
        case .gguf where !output.hasSuffix(".gguf"):
            throw BakeError.unsupportedOutput(output: output, detail: "the source is GGUF, so the output must be a .gguf file")
        case .safetensorsFile where !output.hasSuffix(".safetensors"):
            throw BakeError.unsupportedOutput(output: output, detail: "the source is one .safetensors file, so the output must be one too")
        case .pytorch:
            throw BakeError.unsupportedOutput(output: output, detail: "the source is a PyTorch .bin checkpoint, which nopekit reads but does not write; convert it to safetensors first (nopekit convert \(checkpoint.path) FOLDER) and bake that")
        case .huggingFaceFolder where output.hasSuffix(".safetensors") || output.hasSuffix(".gguf"):
            throw BakeError.unsupportedOutput(output: output, detail: "the source is a Hugging Face folder, so the output is a folder; give a folder path")
        default: break
        }
    }
}

/// A checkpoint's SHA-256 computed on a background thread.
///
/// Whoever starts one must `finish()` it on every path (a `defer`): a process that exits
/// after an error while the thread is still inside libcrypto can crash in libcrypto's exit
/// handlers, turning a clear error message into a core dump.
public final class BackgroundChecksum: @unchecked Sendable {
    private var result: Result<String, Error>?
    private let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var stopped = false

    /// The checksum when `cache` remembered it at the start (no thread runs then).
    public let known: String?

    public init(files: [String], cache: ChecksumCache = .standard) {
        known = SHA256.rememberedCheckpoint(files: files, cache: cache)
        if let known {
            result = .success(known)
            done.signal()
            return
        }
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            result = Result { try SHA256.checkpoint(files: files, cache: cache, stop: { [self] in self.lock.withLock { self.stopped } }) }
            done.signal()
        }
    }

    /// Stops the hash if it is still running and waits for the thread to leave it.
    public func finish() {
        lock.withLock { stopped = true }
        done.wait()
        done.signal()
    }

    /// Blocks until the checksum is known.
    public func wait() throws -> String {
        done.wait()
        done.signal()
        return try result!.get()
    }

    /// What a header records now: the checksum when it was remembered, else the placeholder
    /// that `late` replaces.
    public var valueOrPlaceholder: String { known ?? Provenance.placeholder }

    /// The writers' late metadata: nil when the checksum was remembered (the header is final
    /// from the start, so the output's own digest is computed while it is written rather than
    /// after the header rewrite); else `make` of the checksum once known.
    public func late<T>(_ make: @escaping (String) -> T) -> (() throws -> T)? {
        known == nil ? { [self] in make(try wait()) } : nil
    }
}
