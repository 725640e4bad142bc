/// The byte order of a torch archive's storages (its `byteorder` record; absent means little).
public enum PyTorchByteOrder: String, Sendable {
    case little
    case big
}

/// One PyTorch `pytorch_model.bin` (any `torch.save` zip archive holding a state dict), read
/// without running its pickle.
///
/// Layout (formats.md §4): a zip whose entries sit under an arbitrary root folder
/// (`<root>/data.pkl`, `<root>/byteorder`, `<root>/data/<key>`, ...). `data.pkl` is a
/// protocol-2 pickle of a dict name → tensor; each tensor is a view `(storage key, dtype,
/// storage offset, size, stride)` of a raw storage record. Opening maps the file, reads the zip
/// directory and interprets `data.pkl` with `Unpickler` (allowlisted opcodes and globals only);
/// no tensor byte is read until asked for.
///
/// Reading: a tensor that is contiguous in a STORED record (torch writes every record STORED,
/// 64-byte aligned) is a slice of the map, so `mapsFiles` semantics hold for it exactly as in
/// `SafetensorsFile`. Strided views (`w.t()` saved beside `w`), DEFLATED records (a re-zipped
/// file) and big-endian archives are gathered into a contiguous little-endian buffer by
/// `withRawBytes`, on every call (nothing large is cached). Big-endian archives are converted,
/// not refused: torch itself byte-swaps them on load.
///
/// The legacy (pre-1.6, non-zip) format is read too (`LegacyArchive`); its storages are raw
/// little-endian runs of the file, so its contiguous tensors are mapped as well.
///
/// The state dict may also sit under a `state_dict` or `model` key of the top-level dict (the
/// usual training-checkpoint shape) when the top level holds no tensor itself. Values that are
/// not tensors (an `epoch` count, `_extra_state`) are skipped and listed in `skippedEntries`.
public final class PyTorchFile: TensorStore {
    public let path: String
    /// Every tensor, ordered by where its first byte lies in the file.
    public let tensors: [TensorInfo]
    /// The archive's root folder (`pytorch_model/`, `archive/`, ...); empty for the legacy format.
    public let rootName: String
    /// The pre-1.6 non-zip format.
    public let isLegacyFormat: Bool
    public let byteOrder: PyTorchByteOrder
    /// Keys of the state dict whose values are not tensors; they were skipped.
    public let skippedEntries: [String]
    /// True when every tensor's bytes lie unchanged in the file at `TensorInfo.fileOffset`
    /// (then writers may copy them with `copy_file_range`). False if any tensor has to be
    /// gathered; `isMapped(_:)` says which.
    public let mapsFiles: Bool

    private let mapped: MappedFile
    /// The zip directory; nil for the legacy format.
    private let archive: ZipArchive?
    private let layouts: [TensorLayout]
    private let byName: [String: Int]

    public var sourcePath: String { path }
    public var fileSize: Int { mapped.size }

    /// `data.pkl` larger than this is not a state dict (a large model's is a few hundred KB).
    static let maxPickleBytes = 1 << 30

    /// The first bytes of a legacy (non-zip) `torch.save` file: PROTO, then the magic number
    /// 0x1950a86a20f9469cfc6c as a 10-byte LONG1.
    static let legacyMagic: [UInt8] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]

    /// Opens `path`: reads the zip directory and the pickle and validates every tensor against
    /// its storage. Fails with a `PyTorchError` (or `FileError`) naming the file.
    public init(path: String) throws {
        self.path = path
        let mapped = try MappedFile(path: path)
        self.mapped = mapped
        let value: PickleValue
        let storageEntry: (String) -> ZipArchive.Entry?
        if Self.isLegacy(mapped.bytes) {
            let legacy = try LegacyArchive.read(mapped.bytes, file: path)
            archive = nil
            isLegacyFormat = true
            rootName = ""
            byteOrder = .little
            value = legacy.value
            storageEntry = { legacy.storages[$0] }
        } else {
            let archive = try ZipArchive(mapped: mapped)
            self.archive = archive
            isLegacyFormat = false
            rootName = try Self.findRoot(archive)
            byteOrder = try Self.readByteOrder(archive, root: rootName)
            let pickleEntry = archive.entry("\(rootName)/data.pkl")!
            guard pickleEntry.uncompressedSize <= Self.maxPickleBytes else {
                throw PyTorchError.invalidPickle(file: path, offset: 0, detail: "data.pkl is \(pickleEntry.uncompressedSize) bytes, over the \(Self.maxPickleBytes)-byte limit for a state dict")
            }
            value = try archive.withContents(pickleEntry) { try Unpickler(file: path).load($0) }
            let root = rootName
            storageEntry = { archive.entry("\(root)/data/\($0)") }
        }

        let (entries, skipped) = try Self.stateDict(value, file: path)
        var found: [(name: String, layout: TensorLayout, order: Int)] = []
        for (order, (name, ref)) in entries.enumerated() {
            guard let record = storageEntry(ref.storage.key) else {
                throw PyTorchError.missingStorage(file: path, tensor: name, key: ref.storage.key)
            }
            try archive?.checkReadable(record)
            let layout = try TensorLayout(ref, name: name, entry: record, bigEndian: byteOrder == .big,
                                          fileSize: mapped.size, file: path)
            found.append((name, layout, order))
        }
        // Storage order, as `TensorStore` asks: by first byte, then by pickle order.
        found.sort { ($0.layout.firstByte, $0.order) < ($1.layout.firstByte, $1.order) }

        layouts = found.map(\.layout)
        tensors = found.map { t in
            TensorInfo(name: t.name, dtype: t.layout.dtype, shape: t.layout.size, byteCount: t.layout.byteCount,
                       file: path, fileOffset: t.layout.isMapped ? t.layout.firstByte : t.layout.entry.dataOffset)
        }
        byName = Dictionary(uniqueKeysWithValues: tensors.enumerated().map { ($1.name, $0) })
        skippedEntries = skipped
        mapsFiles = layouts.allSatisfy(\.isMapped)
    }

    public func lookup(_ name: String) -> TensorInfo? { byName[name].map { tensors[$0] } }

    /// Whether `name`'s bytes are read straight from the map (else they are gathered per read,
    /// and its `TensorInfo.fileOffset` is only where its storage record starts).
    public func isMapped(_ name: String) -> Bool { byName[name].map { layouts[$0].isMapped } ?? false }

    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let i = byName[name] else { throw TensorStoreError.tensorNotFound(name: name, source: path) }
        let t = tensors[i], layout = layouts[i]
        if layout.isMapped {
            return try body(UnsafeRawBufferPointer(rebasing: mapped.bytes[t.fileOffset..<(t.fileOffset + t.byteCount)]))
        }
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, t.byteCount), alignment: 64)
        defer { out.deallocate() }
        let entry = layout.entry
        if layout.elementCount == 0 {
            // Nothing to read (and nothing to inflate).
        } else if entry.isStored {
            let record = UnsafeRawBufferPointer(rebasing: mapped.bytes[entry.dataOffset..<(entry.dataOffset + entry.compressedSize)])
            layout.gather(from: record, into: out.baseAddress!)
        } else {
            // Only zip entries can be DEFLATED (the legacy reader makes STORED ones).
            let inflated = try archive!.inflate(entry, prefix: layout.extentBytes)
            inflated.withUnsafeBytes { layout.gather(from: $0, into: out.baseAddress!) }
        }
        return try body(UnsafeRawBufferPointer(start: out.baseAddress, count: t.byteCount))
    }

    public func releasePages(_ name: String, range: Range<Int>) {
        guard let i = byName[name], layouts[i].isMapped else { return }
        let t = tensors[i]
        mapped.release((t.fileOffset + range.lowerBound)..<(t.fileOffset + range.upperBound))
    }

    // MARK: Opening

    static func isLegacy(_ b: UnsafeRawBufferPointer) -> Bool {
        b.count >= 14 && b[0] == PickleOpcode.proto && b[2] == PickleOpcode.long1 && b[3] == 10
            && legacyMagic.elementsEqual(UnsafeRawBufferPointer(rebasing: b[4..<14]))
    }

    /// The root folder: that of the one `<root>/data.pkl`.
    static func findRoot(_ archive: ZipArchive) throws -> String {
        let roots = archive.entries.compactMap { e -> String? in
            guard e.name.hasSuffix("/data.pkl") else { return nil }
            let root = String(e.name.dropLast("/data.pkl".count))
            return root.isEmpty || root.contains("/") ? nil : root
        }
        guard roots.count == 1, let root = roots.first else {
            let detail = roots.isEmpty
                ? "it has no <root>/data.pkl record (\(archive.entries.count) entries\(archive.entries.first.map { ", the first '\($0.name)'" } ?? ""))"
                : "it has \(roots.count) <root>/data.pkl records (\(roots.sorted().joined(separator: ", "))), so which is the checkpoint is ambiguous"
            throw PyTorchError.notATorchCheckpoint(file: archive.path, detail: detail)
        }
        return root
    }

    /// `<root>/byteorder`: `little` or `big`; little when absent (torch's default since 2.1).
    static func readByteOrder(_ archive: ZipArchive, root: String) throws -> PyTorchByteOrder {
        guard let entry = archive.entry("\(root)/byteorder") else { return .little }
        guard entry.uncompressedSize <= 16 else {
            throw PyTorchError.unsupportedByteOrder(file: archive.path, value: "(\(entry.uncompressedSize) bytes)")
        }
        let text = try archive.withContents(entry) { String(decoding: $0, as: UTF8.self) }
        guard let order = PyTorchByteOrder(rawValue: text) else {
            throw PyTorchError.unsupportedByteOrder(file: archive.path, value: text)
        }
        return order
    }

    /// The name → tensor entries of the unpickled object, and the names of the skipped
    /// non-tensor values.
    static func stateDict(_ value: PickleValue, file: String) throws -> (tensors: [(String, TensorRef)], skipped: [String]) {
        guard case .dict(var dict) = value else {
            throw PyTorchError.invalidStructure(file: file, detail: "data.pkl holds a \(value.kindName), not a dict of tensors")
        }
        func holdsTensors(_ d: PickleDict) -> Bool {
            d.entries.contains { if case .tensor = $0.value { return true } else { return false } }
        }
        if !holdsTensors(dict) {
            for key in ["state_dict", "model"] {
                if case .dict(let inner)? = dict[key], holdsTensors(inner) { dict = inner; break }
            }
        }
        var tensors: [(String, TensorRef)] = []
        var skipped: [String] = []
        for (key, v) in dict.entries {
            guard case .string(let name) = key else {
                throw PyTorchError.invalidStructure(file: file, detail: "the state dict has a key that is a \(key.kindName), not a tensor name")
            }
            if case .tensor(let t) = v { tensors.append((name, t)) } else { skipped.append(name) }
        }
        if tensors.isEmpty && !dict.entries.isEmpty {
            throw PyTorchError.invalidStructure(file: file, detail: "no tensor in the top-level dict (keys: \(skipped.prefix(5).joined(separator: ", "))\(skipped.count > 5 ? ", ..." : "")) nor under 'state_dict' or 'model'")
        }
        return (tensors, skipped)
    }
}
