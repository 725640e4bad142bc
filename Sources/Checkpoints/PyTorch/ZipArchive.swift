import CZlib

/// A read-only view of a memory-mapped zip archive: the central directory and where each
/// entry's bytes lie. Only what `torch.save` archives need: STORED entries are handed out as
/// slices of the map (no copy), DEFLATED entries are inflated into an owned buffer on demand.
///
/// Why the central directory and not the local headers: torch writes every entry with flag
/// bit 3 (a data descriptor follows the data), so its local headers carry a CRC and sizes of 0.
/// Only the central directory has the real values. The local header is still read, for its
/// name and extra-field lengths: torch pads the extra field so that every entry's data starts
/// on a 64-byte boundary, and the data starts right after it.
///
/// Everything read from the file is bounded before it is used (entry count against the
/// directory size, every offset and size against the file size, entries against each other), so
/// a hostile archive cannot make this allocate more than the file holds or read outside the map.
final class ZipArchive {
    /// One file of the archive, as the central directory describes it.
    struct Entry: Equatable {
        var name: String
        /// 0 STORED, 8 DEFLATED (anything else is refused when the entry is read).
        var method: UInt16
        var flags: UInt16
        /// CRC-32 of the uncompressed bytes; 0 when the writer did not compute it (torch's
        /// `set_crc32_options(False)`), in which case it is not checked.
        var crc32: UInt32
        var compressedSize: Int
        var uncompressedSize: Int
        var localHeaderOffset: Int
        /// Absolute offset of the first (compressed) data byte: local header + 30 + name + extra.
        var dataOffset: Int

        var isEncrypted: Bool { flags & 0x0041 != 0 }  // bit 0 encrypted, bit 6 strong encryption
        var isStored: Bool { method == 0 }
    }

    /// More entries than this is not a torch checkpoint (one per storage plus a handful).
    static let maxEntries = 1 << 20
    /// zlib's deflate cannot compress better than about 1032:1, so a DEFLATED entry that claims a
    /// larger ratio is lying about its size (and would make us allocate it).
    static let maxDeflateRatio = 1032

    let path: String
    let mapped: MappedFile
    let entries: [Entry]
    private let byName: [String: Int]

    var bytes: UnsafeRawBufferPointer { mapped.bytes }

    /// Reads the central directory of the mapped file. Throws `PyTorchError.notAZip` if there is
    /// no end-of-central-directory record, `invalidZip` for any structural error.
    init(mapped: MappedFile) throws {
        self.path = mapped.path
        self.mapped = mapped
        entries = try Self.readDirectory(mapped.bytes, file: path)
        var byName: [String: Int] = [:]
        for (i, e) in entries.enumerated() {
            guard byName[e.name] == nil else {
                throw PyTorchError.invalidZip(file: path, detail: "entry name '\(e.name)' appears twice")
            }
            byName[e.name] = i
        }
        self.byName = byName
    }

    func entry(_ name: String) -> Entry? { byName[name].map { entries[$0] } }

    /// Refuses entries this reader cannot decode, so that a checkpoint fails when it is opened,
    /// not when one tensor is first read.
    func checkReadable(_ e: Entry) throws {
        if e.isEncrypted {
            throw PyTorchError.unsupportedZipEntry(file: path, entry: e.name, detail: "the entry is encrypted")
        }
        switch e.method {
        case 0:
            guard e.compressedSize == e.uncompressedSize else {
                throw PyTorchError.invalidZip(file: path, detail: "STORED entry '\(e.name)' has compressed size \(e.compressedSize) ≠ size \(e.uncompressedSize)")
            }
        case 8:
            let (bound, overflow) = e.compressedSize.multipliedReportingOverflow(by: Self.maxDeflateRatio)
            guard overflow || e.uncompressedSize <= bound + 1024 else {
                throw PyTorchError.corruptEntry(file: path, entry: e.name, detail: "\(e.compressedSize) deflated bytes cannot expand to the declared \(e.uncompressedSize)")
            }
        default:
            throw PyTorchError.unsupportedZipEntry(file: path, entry: e.name, detail: "compression method \(e.method) (\(Self.methodName(e.method)))")
        }
    }

    /// The stored bytes of a STORED entry: a slice of the map, valid while `self` lives.
    func storedBytes(_ e: Entry) -> UnsafeRawBufferPointer {
        precondition(e.isStored)
        return UnsafeRawBufferPointer(rebasing: bytes[e.dataOffset..<(e.dataOffset + e.compressedSize)])
    }

    /// The whole uncompressed entry, CRC-checked: for the small records (data.pkl, byteorder).
    /// Mapped for STORED entries, inflated for DEFLATED ones.
    func withContents<R>(_ e: Entry, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try checkReadable(e)
        if e.isStored {
            let raw = storedBytes(e)
            try checkCRC(e, raw)
            return try body(raw)
        }
        let owned = try inflate(e, prefix: e.uncompressedSize)
        return try owned.withUnsafeBytes { raw in
            try checkCRC(e, raw)
            return try body(raw)
        }
    }

    private func checkCRC(_ e: Entry, _ raw: UnsafeRawBufferPointer) throws {
        guard e.crc32 != 0 else { return }
        let actual = Self.crc32(raw)
        guard actual == e.crc32 else {
            throw PyTorchError.corruptEntry(file: path, entry: e.name, detail: "CRC-32 is \(hex(actual)), the central directory says \(hex(e.crc32))")
        }
    }

    /// The first `prefix` uncompressed bytes of a DEFLATED entry (all of them when `prefix` is
    /// the entry's size, in which case the stream must also end exactly there). Inflating only
    /// a prefix lets a small tensor at the start of a large compressed storage cost little.
    func inflate(_ e: Entry, prefix: Int) throws -> [UInt8] {
        precondition(e.method == 8 && prefix >= 0 && prefix <= e.uncompressedSize)
        let corrupt = { (detail: String) in PyTorchError.corruptEntry(file: self.path, entry: e.name, detail: detail) }
        var out = [UInt8](repeating: 0, count: prefix)
        var stream = z_stream()
        guard inflateInit2_(&stream, -15, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw corrupt("zlib could not start inflating")
        }
        defer { inflateEnd(&stream) }
        let input = storedRange(e)
        let chunk = 1 << 30  // zlib counts in UInt32
        var consumed = 0, produced = 0
        var ended = false
        try out.withUnsafeMutableBytes { outBuf in
            while produced < prefix {
                if stream.avail_in == 0 && consumed < input.count {
                    let n = min(chunk, input.count - consumed)
                    stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress!.assumingMemoryBound(to: UInt8.self) + consumed)
                    stream.avail_in = UInt32(n)
                    consumed += n
                }
                let room = min(chunk, prefix - produced)
                stream.next_out = outBuf.baseAddress!.assumingMemoryBound(to: UInt8.self) + produced
                stream.avail_out = UInt32(room)
                let rc = CZlib.inflate(&stream, Z_NO_FLUSH)
                produced += room - Int(stream.avail_out)
                if rc == Z_STREAM_END { ended = true; break }
                guard rc == Z_OK else {
                    let message = stream.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
                    throw corrupt(rc == Z_BUF_ERROR ? "the deflate stream ends early" : message)
                }
            }
        }
        guard produced == prefix else {
            throw corrupt("inflates to \(produced) bytes, the central directory says \(e.uncompressedSize)")
        }
        if prefix == e.uncompressedSize && !ended {
            // Everything asked for arrived; the stream must end here, not hold more.
            var extra: UInt8 = 0
            let rc: Int32 = withUnsafeMutablePointer(to: &extra) { p in
                if stream.avail_in == 0 && consumed < input.count {
                    let n = min(chunk, input.count - consumed)
                    stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress!.assumingMemoryBound(to: UInt8.self) + consumed)
                    stream.avail_in = UInt32(n)
                    consumed += n
                }
                stream.next_out = p
                stream.avail_out = 1
                return CZlib.inflate(&stream, Z_NO_FLUSH)
            }
            guard rc == Z_STREAM_END, stream.avail_out == 1 else {
                throw corrupt("the deflate stream holds more than the declared \(e.uncompressedSize) bytes, or does not end")
            }
        }
        return out
    }

    /// The compressed bytes of an entry (whatever its method).
    private func storedRange(_ e: Entry) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[e.dataOffset..<(e.dataOffset + e.compressedSize)])
    }

    static func crc32(_ raw: UnsafeRawBufferPointer) -> UInt32 {
        var crc = CZlib.crc32(0, nil, 0)
        var offset = 0
        while offset < raw.count {
            let n = min(1 << 30, raw.count - offset)
            crc = CZlib.crc32(crc, raw.baseAddress!.assumingMemoryBound(to: UInt8.self) + offset, UInt32(n))
            offset += n
        }
        return UInt32(truncatingIfNeeded: crc)
    }

    static func methodName(_ m: UInt16) -> String {
        switch m {
        case 0: return "stored"
        case 8: return "deflate"
        case 9: return "deflate64"
        case 12: return "bzip2"
        case 14: return "lzma"
        case 93: return "zstd"
        case 95: return "xz"
        default: return "unknown"
        }
    }

    // MARK: Reading the directory

    private static let eocdSignature: UInt32 = 0x0605_4b50
    private static let zip64LocatorSignature: UInt32 = 0x0706_4b50
    private static let zip64EOCDSignature: UInt32 = 0x0606_4b50
    private static let centralSignature: UInt32 = 0x0201_4b50
    private static let localSignature: UInt32 = 0x0403_4b50

    static func readDirectory(_ b: UnsafeRawBufferPointer, file: String) throws -> [Entry] {
        let size = b.count
        let bad = { (detail: String) in PyTorchError.invalidZip(file: file, detail: detail) }
        let startsLikeZip = size >= 4 && b.u32(0) == localSignature

        // The end-of-central-directory record is the last 22 bytes plus a comment of up to
        // 65535 bytes; search backwards for a signature whose comment ends exactly at EOF.
        var eocd = -1
        if size >= 22 {
            var at = size - 22
            let lowest = max(0, size - 22 - 0xFFFF)
            while at >= lowest {
                if b.u32(at) == eocdSignature && at + 22 + Int(b.u16(at + 20)) == size { eocd = at; break }
                at -= 1
            }
        }
        guard eocd >= 0 else {
            if startsLikeZip {
                throw bad("no end-of-central-directory record: the file is truncated")
            }
            throw PyTorchError.notAZip(file: file, detail: size < 22 ? "only \(size) bytes" : "no zip end-of-central-directory record")
        }
        let disk = Int(b.u16(eocd + 4)), cdDisk = Int(b.u16(eocd + 6))
        var countOnDisk = Int(b.u16(eocd + 8)), count = Int(b.u16(eocd + 10))
        var cdSize = Int(b.u32(eocd + 12)), cdOffset = Int(b.u32(eocd + 16))
        // Where the central directory must end: at the zip64 end record if there is one, else
        // at the end record.
        var cdLimit = eocd

        // ZIP64: a 20-byte locator right before the end record points at the 56-byte ZIP64 end
        // record, whose 64-bit fields replace the 16/32-bit ones.
        if eocd >= 20 && b.u32(eocd - 20) == zip64LocatorSignature {
            let locator = eocd - 20
            guard b.u32(locator + 4) == 0, b.u32(locator + 16) <= 1 else { throw bad("multi-disk ZIP64 archives are not supported") }
            let record = try checkedInt(b.u64(locator + 8), bad("ZIP64 end record offset out of range"))
            guard record <= locator - 56, b.u32(record) == zip64EOCDSignature else {
                throw bad("the ZIP64 locator points at \(record), where there is no ZIP64 end-of-central-directory record")
            }
            guard b.u32(record + 16) == 0, b.u32(record + 20) == 0 else { throw bad("multi-disk ZIP64 archives are not supported") }
            let count64 = try checkedInt(b.u64(record + 32), bad("ZIP64 entry count out of range"))
            let size64 = try checkedInt(b.u64(record + 40), bad("ZIP64 central directory size out of range"))
            let offset64 = try checkedInt(b.u64(record + 48), bad("ZIP64 central directory offset out of range"))
            // torch (miniz) writes both records even for small files. A 32-bit field either
            // defers to the ZIP64 one (all ones) or must agree with it: a disagreement means one
            // of them was damaged, and which one is right cannot be told.
            for (what, narrow, saturated, wide) in [("entry count", count, 0xFFFF, count64), ("entry count on this disk", countOnDisk, 0xFFFF, count64),
                                                    ("directory size", cdSize, 0xFFFF_FFFF, size64), ("directory offset", cdOffset, 0xFFFF_FFFF, offset64)]
            where narrow != saturated && narrow != wide {
                throw bad("the end record and the ZIP64 end record disagree on the central \(what) (\(narrow) vs \(wide))")
            }
            countOnDisk = try checkedInt(b.u64(record + 24), bad("ZIP64 entry count out of range"))
            count = count64
            cdSize = size64
            cdOffset = offset64
            cdLimit = record
        }
        guard disk == 0 || disk == 0xFFFF, cdDisk == 0 || cdDisk == 0xFFFF, countOnDisk == count else {
            throw bad("multi-disk (spanned) archives are not supported")
        }
        guard cdOffset <= cdLimit, cdSize <= cdLimit - cdOffset else {
            throw bad("the central directory (\(cdSize) bytes at \(cdOffset)) does not fit before its end record at \(cdLimit); the file is truncated or corrupt")
        }
        // Every central entry takes at least 46 bytes: this bounds `count` by the file's size.
        guard count <= cdSize / 46, count <= maxEntries else {
            throw bad("\(count) entries cannot fit in a \(cdSize)-byte central directory (limit \(maxEntries))")
        }

        var entries: [Entry] = []
        entries.reserveCapacity(count)
        var at = cdOffset
        let cdEnd = cdOffset + cdSize
        for index in 0..<count {
            guard at <= cdEnd - 46, b.u32(at) == centralSignature else {
                throw bad("central directory entry \(index) at \(at) is missing or has a bad signature")
            }
            let flags = b.u16(at + 8), method = b.u16(at + 10), crc = b.u32(at + 16)
            var compressed = UInt64(b.u32(at + 20)), uncompressed = UInt64(b.u32(at + 24))
            let nameLength = Int(b.u16(at + 28)), extraLength = Int(b.u16(at + 30)), commentLength = Int(b.u16(at + 32))
            let startDisk = b.u16(at + 34)
            var localOffset = UInt64(b.u32(at + 42))
            let next = at + 46 + nameLength + extraLength + commentLength
            guard next <= cdEnd else { throw bad("central directory entry \(index) runs past the directory's end") }
            guard let name = String(strictUTF8: UnsafeRawBufferPointer(rebasing: b[(at + 46)..<(at + 46 + nameLength)])) else {
                throw bad("central directory entry \(index) has a name that is not UTF-8")
            }
            // ZIP64 extended information (header id 1): the 64-bit values, present only for the
            // fields whose 32-bit value is all ones, in this order.
            if compressed == 0xFFFF_FFFF || uncompressed == 0xFFFF_FFFF || localOffset == 0xFFFF_FFFF || startDisk == 0xFFFF {
                var extra = at + 46 + nameLength
                let extraEnd = extra + extraLength
                var found = false
                while extra + 4 <= extraEnd {
                    let id = b.u16(extra), length = Int(b.u16(extra + 2))
                    guard extra + 4 + length <= extraEnd else { throw bad("entry '\(name)': an extra field runs past its end") }
                    if id == 1 {
                        var field = extra + 4
                        func take() throws -> UInt64 {
                            guard field + 8 <= extra + 4 + length else { throw bad("entry '\(name)': ZIP64 extra field too short") }
                            defer { field += 8 }
                            return b.u64(field)
                        }
                        if uncompressed == 0xFFFF_FFFF { uncompressed = try take() }
                        if compressed == 0xFFFF_FFFF { compressed = try take() }
                        if localOffset == 0xFFFF_FFFF { localOffset = try take() }
                        found = true
                        break
                    }
                    extra += 4 + length
                }
                guard found else { throw bad("entry '\(name)' has 32-bit fields set to 0xFFFFFFFF but no ZIP64 extra field") }
            }
            guard startDisk == 0 || startDisk == 0xFFFF else { throw bad("entry '\(name)' starts on disk \(startDisk): multi-disk archives are not supported") }
            let csize = try checkedInt(compressed, bad("entry '\(name)': compressed size out of range"))
            let usize = try checkedInt(uncompressed, bad("entry '\(name)': size out of range"))
            let local = try checkedInt(localOffset, bad("entry '\(name)': local header offset out of range"))

            // The local header: signature, same name, then the data.
            guard local <= cdOffset - 30, b.u32(local) == localSignature else {
                throw bad("entry '\(name)': no local header at offset \(local)")
            }
            let localName = Int(b.u16(local + 26)), localExtra = Int(b.u16(local + 28))
            let dataOffset = local + 30 + localName + localExtra
            guard localName == nameLength, dataOffset <= cdOffset,
                  UnsafeRawBufferPointer(rebasing: b[(local + 30)..<(local + 30 + localName)]).elementsEqual(
                      UnsafeRawBufferPointer(rebasing: b[(at + 46)..<(at + 46 + nameLength)])) else {
                throw bad("entry '\(name)': the local header at \(local) names a different file")
            }
            guard csize <= cdOffset - dataOffset else {
                throw bad("entry '\(name)': \(csize) bytes at \(dataOffset) run into the central directory at \(cdOffset); the file is truncated or corrupt")
            }
            entries.append(Entry(name: name, method: method, flags: flags, crc32: crc, compressedSize: csize,
                                 uncompressedSize: usize, localHeaderOffset: local, dataOffset: dataOffset))
            at = next
        }

        // No two entries may share bytes: a zip whose entries overlap is either corrupt or a
        // "zip bomb" built to be read many times over.
        let byOffset = entries.sorted { $0.localHeaderOffset < $1.localHeaderOffset }
        for (a, b) in zip(byOffset, byOffset.dropFirst()) where a.dataOffset + a.compressedSize > b.localHeaderOffset {
            throw bad("entries '\(a.name)' and '\(b.name)' overlap")
        }
        return entries
    }

    private static func checkedInt(_ v: UInt64, _ error: @autoclosure () -> PyTorchError) throws -> Int {
        guard v <= UInt64(Int.max) else { throw error() }
        return Int(v)
    }
}

private func hex(_ v: UInt32) -> String { "0x" + String(v, radix: 16) }

fileprivate extension UnsafeRawBufferPointer {
    /// Little-endian integers at a byte offset the caller has bounds-checked.
    func u16(_ at: Int) -> UInt16 { UInt16(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt16.self)) }
    func u32(_ at: Int) -> UInt32 { UInt32(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
    func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
}

extension String {
    /// The string these bytes encode as UTF-8, or nil if they are not valid UTF-8 (decoding
    /// replaces invalid sequences with U+FFFD, so a lossless round trip means they were valid).
    init?(strictUTF8 raw: UnsafeRawBufferPointer) {
        let s = String(decoding: raw, as: UTF8.self)
        guard s.utf8.elementsEqual(raw) else { return nil }
        self = s
    }
}
