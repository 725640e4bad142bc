/// The parsed and validated header of one safetensors file.
///
/// Layout (huggingface/safetensors README): `u64 N` little-endian, `N` bytes of UTF-8 JSON,
/// then the data buffer; each tensor's `data_offsets` are relative to the buffer. Validation
/// runs the reference crate's checks in its order (`read_metadata`, then `validate`):
/// header cap, header length, UTF-8, JSON structure, offsets contiguous from 0 after sorting,
/// checked shape arithmetic, byte size per tensor, exact file length. nopekit also refuses a
/// header that names a tensor twice (the crate keeps the last one silently).
public struct SafetensorsHeader: Equatable, Sendable {
    /// The crate's cap on `N`.
    public static let maxHeaderLength: UInt64 = 100_000_000

    /// `__metadata__`, in file order (nil when absent or `null`).
    public var metadata: [(key: String, value: String)]?
    /// Tensors sorted by data offset, with offsets relative to the data buffer.
    public var entries: [Entry]
    /// `N`, the header length.
    public var headerLength: Int
    /// Offset of the data buffer in the file (`8 + N`).
    public var dataStart: Int { 8 + headerLength }

    public struct Entry: Equatable, Sendable {
        public var name: String
        public var dtype: DType
        public var shape: [Int]
        public var begin: Int
        public var end: Int
    }

    public static func == (a: SafetensorsHeader, b: SafetensorsHeader) -> Bool {
        a.entries == b.entries && a.headerLength == b.headerLength
            && a.metadata?.map(\.key) == b.metadata?.map(\.key) && a.metadata?.map(\.value) == b.metadata?.map(\.value)
    }

    /// The metadata value for `key`.
    public func metadataValue(_ key: String) -> String? { metadata?.last(where: { $0.key == key })?.value }

    /// Parses and validates the header at the start of `bytes`, the whole file of `fileSize`
    /// bytes (`bytes` may be only a prefix holding the header; the length check uses `fileSize`).
    public static func parse(_ bytes: UnsafeRawBufferPointer, fileSize: Int, file: String) throws -> SafetensorsHeader {
        guard fileSize >= 8, bytes.count >= 8 else { throw SafetensorsError.headerTooSmall(file: file) }
        let n = bytes.loadUnaligned(as: UInt64.self).littleEndian
        guard n <= maxHeaderLength else { throw SafetensorsError.headerTooLarge(file: file, length: n) }
        let headerLength = Int(n)
        guard 8 + headerLength <= fileSize, 8 + headerLength <= bytes.count else {
            throw SafetensorsError.invalidHeaderLength(file: file, length: n, fileSize: fileSize)
        }
        let text = UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + headerLength)])
        guard String(validating: text, as: UTF8.self) != nil else { throw SafetensorsError.invalidUTF8(file: file) }
        let json: JSONValue
        do {
            json = try JSONReader.parse(text)
        } catch let e as JSONSyntaxError {
            throw SafetensorsError.invalidJSON(file: file, detail: e.description)
        }
        var header = try decodeStructure(json, file: file)
        header.headerLength = headerLength
        let dataLength = try validateOffsets(&header.entries, file: file)
        let expected = 8 + headerLength + dataLength
        guard expected == fileSize else {
            throw SafetensorsError.incompleteBuffer(file: file, expectedSize: expected, actualSize: fileSize)
        }
        return header
    }

    /// JSON → entries, checking types, fields, dtypes and duplicate names.
    static func decodeStructure(_ json: JSONValue, file: String) throws -> SafetensorsHeader {
        guard case .object(let members) = json else {
            throw SafetensorsError.invalidHeader(file: file, detail: "the top level must be a JSON object")
        }
        if let dup = json.duplicateKey {
            if dup == "__metadata__" {
                throw SafetensorsError.invalidHeader(file: file, detail: "__metadata__ appears twice")
            }
            throw SafetensorsError.duplicateTensor(file: file, name: dup)
        }
        var metadata: [(key: String, value: String)]?
        var entries: [Entry] = []
        entries.reserveCapacity(members.count)
        for member in members {
            if member.key == "__metadata__" {
                switch member.value {
                case .null: metadata = nil
                case .object(let kv):
                    metadata = try kv.map { m in
                        guard let s = m.value.stringValue else {
                            throw SafetensorsError.invalidHeader(file: file, detail: "__metadata__ value of '\(m.key)' is not a string (safetensors metadata is string → string)")
                        }
                        return (m.key, s)
                    }
                default:
                    throw SafetensorsError.invalidHeader(file: file, detail: "__metadata__ must be an object of strings")
                }
                continue
            }
            entries.append(try decodeEntry(name: member.key, member.value, file: file))
        }
        return SafetensorsHeader(metadata: metadata, entries: entries, headerLength: 0)
    }

    static func decodeEntry(name: String, _ value: JSONValue, file: String) throws -> Entry {
        func bad(_ detail: String) -> SafetensorsError {
            .invalidHeader(file: file, detail: "tensor '\(name)': \(detail)")
        }
        guard case .object = value else { throw bad("entry must be an object with dtype, shape and data_offsets") }
        guard let dtypeValue = value["dtype"] else { throw bad("missing field 'dtype'") }
        guard let code = dtypeValue.stringValue else { throw bad("'dtype' must be a string") }
        guard let dtype = DType(rawValue: code) else {
            throw SafetensorsError.unknownDType(file: file, tensor: name, dtype: code)
        }
        guard let shapeValue = value["shape"] else { throw bad("missing field 'shape'") }
        guard let dims = shapeValue.arrayValue else { throw bad("'shape' must be an array of non-negative integers") }
        var shape: [Int] = []
        for d in dims {
            guard let u = d.unsignedValue else { throw bad("'shape' must be an array of non-negative integers") }
            guard u <= UInt64(Int.max) else { throw SafetensorsError.validationOverflow(file: file, tensor: name) }
            shape.append(Int(u))
        }
        guard let offsetsValue = value["data_offsets"] else { throw bad("missing field 'data_offsets'") }
        guard let offsets = offsetsValue.arrayValue, offsets.count == 2,
              let b = offsets[0].unsignedValue, let e = offsets[1].unsignedValue
        else { throw bad("'data_offsets' must be two non-negative integers [begin, end]") }
        guard b <= UInt64(Int.max), e <= UInt64(Int.max) else {
            throw SafetensorsError.invalidOffset(file: file, tensor: name, detail: "offset beyond any file size")
        }
        return Entry(name: name, dtype: dtype, shape: shape, begin: Int(b), end: Int(e))
    }

    /// Sorts by `(begin, end)` and checks contiguity and sizes; returns the data length.
    static func validateOffsets(_ entries: inout [Entry], file: String) throws -> Int {
        entries.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var position = 0
        for e in entries {
            if e.begin != position || e.end < e.begin {
                let detail: String
                if e.end < e.begin { detail = "end \(e.end) is before begin \(e.begin)" }
                else if position == 0 { detail = "the first tensor must start at 0, found \(e.begin)" }
                else if e.begin > position { detail = "gap: starts at \(e.begin) but the previous tensor ends at \(position)" }
                else { detail = "overlap: starts at \(e.begin) but the previous tensor ends at \(position)" }
                throw SafetensorsError.invalidOffset(file: file, tensor: e.name, detail: detail)
            }
            position = e.end
            var elements = 1
            for d in e.shape {
                let (p, o) = elements.multipliedReportingOverflow(by: d)
                guard !o else { throw SafetensorsError.validationOverflow(file: file, tensor: e.name) }
                elements = p
            }
            let (bits, o) = elements.multipliedReportingOverflow(by: e.dtype.bitSize)
            guard !o else { throw SafetensorsError.validationOverflow(file: file, tensor: e.name) }
            guard bits % 8 == 0 else {
                throw SafetensorsError.tensorInvalidInfo(file: file, tensor: e.name, detail: "\(elements) elements of \(e.dtype.code) do not end on a byte boundary")
            }
            guard e.end - e.begin == bits / 8 else {
                throw SafetensorsError.tensorInvalidInfo(file: file, tensor: e.name, detail: "spans \(e.end - e.begin) bytes but its shape and dtype need \(bits / 8)")
            }
        }
        return position
    }
}
