/// The pre-1.6 `torch.save` format (`_use_new_zipfile_serialization=False`; formats.md §4.3),
/// still found in older Hugging Face repositories.
///
/// The file is five pickles and then the storages, back to back, with no directory:
/// 1. the magic number 0x1950a86a20f9469cfc6c (a 10-byte LONG1, checked as bytes);
/// 2. the protocol version, 1001;
/// 3. `sys_info`: `{protocol_version, little_endian, type_sizes}`;
/// 4. the object, whose persistent ids are `('storage', type, key, location, numel, None)`;
/// 5. the list of storage keys, in the order their bytes follow;
/// then for each key an int64 element count and the raw elements.
///
/// A storage's length is only known from its element type, which only the pickle says, so the
/// offsets are computed from every persistent id the unpickler met (not only the tensors a
/// state-dict walk keeps). Each storage becomes a synthetic STORED zip entry, so the rest of the
/// reader (validation, mapping, gathering) is the same for both formats.
struct LegacyArchive {
    let value: PickleValue
    /// Storage key → where its bytes are (as a STORED entry named by the key).
    let storages: [String: ZipArchive.Entry]

    static let protocolVersion = 1001

    static func read(_ b: UnsafeRawBufferPointer, file: String) throws -> LegacyArchive {
        let structure = { (detail: String) in PyTorchError.invalidStructure(file: file, detail: "legacy format: \(detail)") }
        // 1. The magic number pickle: PROTO n, LONG1 10 bytes, STOP (`PyTorchFile.isLegacy`).
        guard b.count > 14, b[14] == PickleOpcode.stop else { throw structure("the magic number pickle does not end after the magic number") }
        var unpickler = Unpickler(file: file)
        unpickler.legacyPersistentIDs = true

        // 2. Protocol version.
        let version = try unpickler.load(b, from: 15)
        guard case .int(let v) = version.value, v == protocolVersion else {
            throw PyTorchError.legacyFormat(file: file, detail: "protocol version \(version.value.kindName) (only \(protocolVersion) exists)")
        }
        // 3. sys_info.
        let sysInfo = try unpickler.load(b, from: version.end)
        guard case .dict(let info) = sysInfo.value else { throw structure("sys_info is a \(sysInfo.value.kindName), not a dict") }
        guard case .bool(let little)? = info["little_endian"] else { throw structure("sys_info has no little_endian flag") }
        guard little else { throw PyTorchError.legacyFormat(file: file, detail: "big-endian storages") }
        // 4. The object; 5. the storage keys.
        let main = try unpickler.load(b, from: sysInfo.end)
        let keyList = try unpickler.load(b, from: main.end)
        guard case .list(let list) = keyList.value else { throw structure("the storage key list is a \(keyList.value.kindName)") }
        let keys = try list.items.map { item -> String in
            guard case .string(let key) = item else { throw structure("a storage key is a \(item.kindName), not a string") }
            return key
        }

        // Element size and count of each key, from the persistent ids (all must agree).
        var declared: [String: StorageRef] = [:]
        for s in main.storages {
            if let previous = declared[s.key], previous.byteCount != s.byteCount {
                throw structure("storage '\(s.key)' is declared with two sizes")
            }
            declared[s.key] = s
        }

        // The storages, in key-list order, each an int64 count then count × element size bytes.
        var storages: [String: ZipArchive.Entry] = [:]
        var at = keyList.end
        for key in keys {
            guard storages[key] == nil else { throw structure("storage '\(key)' is listed twice") }
            guard let ref = declared[key] else { throw structure("storage '\(key)' is listed but nothing uses it, so its size is unknown") }
            guard at <= b.count - 8 else {
                throw PyTorchError.invalidStructure(file: file, detail: "legacy format: the file ends before storage '\(key)'; it is truncated")
            }
            let count = Int(Int64(littleEndian: b.loadUnaligned(fromByteOffset: at, as: Int64.self)))
            let elementSize = ref.scalar?.elementSize ?? 1
            let (bytes, overflow) = count.multipliedReportingOverflow(by: elementSize)
            guard count >= 0, !overflow, bytes <= b.count - (at + 8) else {
                throw PyTorchError.invalidStructure(file: file, detail: "legacy format: storage '\(key)' claims \(count) elements, past the end of the file; it is truncated or corrupt")
            }
            storages[key] = ZipArchive.Entry(name: key, method: 0, flags: 0, crc32: 0, compressedSize: bytes,
                                             uncompressedSize: bytes, localHeaderOffset: at, dataOffset: at + 8)
            at += 8 + bytes
        }
        return LegacyArchive(value: main.value, storages: storages)
    }
}
