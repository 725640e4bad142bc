/// The parsed header of a GGUF file: version, metadata in file order, tensor infos and where
/// the data section starts (gguf.md; llama.cpp gguf.cpp `gguf_init_from_reader`).
///
/// Parsing applies every check llama.cpp's reader applies, in its order, plus the model
/// loader's bounds check, so a file nopekit accepts is one llama.cpp accepts.
public struct GGUFHeader: Sendable {
    public struct TensorEntry: Equatable, Sendable {
        public var name: String
        public var type: GGMLType
        /// Dimensions in ggml order (`ne[0]` innermost), as stored.
        public var ne: [Int]
        /// Offset relative to the data section.
        public var offset: Int
        public var byteCount: Int

        /// HF / numpy order: outermost first.
        public var shape: [Int] { ne.reversed() }
        public var elementCount: Int { TensorInfo.elementCount(of: ne) }
    }

    public var version: UInt32
    public var metadata: [GGUFKeyValue]
    public var tensors: [TensorEntry]
    public var alignment: Int
    /// Absolute offset of the data section.
    public var dataStart: Int

    public static func alignUp(_ x: Int, _ alignment: Int) -> Int { (x + alignment - 1) / alignment * alignment }

    /// Parses and validates `bytes`, the whole file.
    public static func parse(_ bytes: UnsafeRawBufferPointer, file: String) throws -> GGUFHeader {
        var r = Cursor(bytes: bytes, file: file)
        guard bytes.count >= 4 else { throw GGUFError.truncated(file: file, reading: "the magic", offset: 0) }
        guard Array(bytes[0..<4]) == GGUF.magic else { throw GGUFError.badMagic(file: file) }
        r.position = 4
        let version = try r.u32("the version")
        if version & 0xFFFF == 0 && version != 0 { throw GGUFError.bigEndian(file: file) }
        guard GGUF.readableVersions.contains(version) else { throw GGUFError.unsupportedVersion(file: file, version: version) }
        let tensorCount = try r.u64("the tensor count")
        let kvCount = try r.u64("the metadata count")
        // Each KV needs at least 8 (key length) + 4 (type) + 1 bytes, each tensor info 8+4+4+8.
        guard kvCount <= UInt64(r.remaining / 13), tensorCount <= UInt64(r.remaining / 24) else {
            throw GGUFError.truncated(file: file, reading: "\(kvCount) metadata entries and \(tensorCount) tensor infos", offset: bytes.count)
        }

        var metadata: [GGUFKeyValue] = []
        metadata.reserveCapacity(Int(kvCount))
        var keys = Set<String>()
        for i in 0..<Int(kvCount) {
            let key = try r.string(context: "metadata key \(i)")
            guard !key.isEmpty else { throw GGUFError.emptyKey(file: file, index: i) }
            guard keys.insert(key).inserted else { throw GGUFError.duplicateKey(file: file, key: key) }
            let rawType = try r.u32("the type of '\(key)'")
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw GGUFError.invalidValueType(file: file, key: key, type: rawType)
            }
            metadata.append(GGUFKeyValue(key, try r.value(type, key: key)))
        }

        var alignment = GGUF.defaultAlignment
        if let a = metadata[GGUF.Key.alignment] {
            guard case .uint32(let v) = a else {
                throw GGUFError.badAlignment(file: file, detail: "has type \(a.type)")
            }
            guard v != 0, v & (v - 1) == 0 else { throw GGUFError.badAlignment(file: file, detail: "is \(v)") }
            alignment = Int(v)
        }

        var tensors: [TensorEntry] = []
        tensors.reserveCapacity(Int(tensorCount))
        var names = Set<String>()
        var rawOffsets: [UInt64] = []
        for i in 0..<Int(tensorCount) {
            let name = try r.string(context: "tensor name \(i)")
            guard name.utf8.count <= GGUF.maxNameLength else { throw GGUFError.tensorNameTooLong(file: file, name: name) }
            guard names.insert(name).inserted else { throw GGUFError.duplicateTensor(file: file, name: name) }
            let dims = try r.u32("the dimension count of '\(name)'")
            guard dims <= UInt32(GGUF.maxDimensions) else { throw GGUFError.tooManyDimensions(file: file, tensor: name, dimensions: dims) }
            var ne: [Int] = []
            for _ in 0..<dims {
                let d = try r.u64("the dimensions of '\(name)'")
                guard d <= UInt64(Int64.max) else { throw GGUFError.invalidDimension(file: file, tensor: name, value: d) }
                ne.append(Int(d))
            }
            let rawType = try r.u32("the type of '\(name)'")
            let offset = try r.u64("the data offset of '\(name)'")
            var elements = 1
            for d in ne {
                let (p, o) = elements.multipliedReportingOverflow(by: d)
                guard !o else { throw GGUFError.elementCountOverflow(file: file, tensor: name) }
                elements = p
            }
            guard let type = GGMLType(rawValue: rawType) else {
                throw GGUFError.unknownTensorType(file: file, tensor: name, type: rawType)
            }
            let rowLength = ne.first ?? 1
            guard rowLength % type.blockElements == 0 else {
                throw GGUFError.blockMisaligned(file: file, tensor: name, type: type, rowLength: rowLength)
            }
            let (byteCount, o) = (elements / type.blockElements).multipliedReportingOverflow(by: type.blockBytes)
            guard !o, byteCount <= Int.max - alignment else { throw GGUFError.elementCountOverflow(file: file, tensor: name) }
            tensors.append(TensorEntry(name: name, type: type, ne: ne, offset: 0, byteCount: byteCount))
            rawOffsets.append(offset)
        }

        let dataStart = alignUp(r.position, alignment)
        if !tensors.isEmpty && dataStart > bytes.count {
            throw GGUFError.dataStartOutOfBounds(file: file, dataStart: dataStart, fileSize: bytes.count)
        }
        var expected = 0
        for i in tensors.indices {
            guard rawOffsets[i] == UInt64(expected) else {
                throw GGUFError.misorderedOffsets(file: file, tensor: tensors[i].name, offset: rawOffsets[i], expected: expected)
            }
            tensors[i].offset = expected
            let (next, o) = expected.addingReportingOverflow(alignUp(tensors[i].byteCount, alignment))
            guard !o else { throw GGUFError.elementCountOverflow(file: file, tensor: tensors[i].name) }
            // The data, padding included, must be in the file (llama.cpp reads ctx->size bytes).
            let end = dataStart + next
            guard end <= bytes.count else {
                throw GGUFError.dataOutOfBounds(file: file, tensor: tensors[i].name, end: end, fileSize: bytes.count)
            }
            expected = next
        }
        return GGUFHeader(version: version, metadata: metadata, tensors: tensors, alignment: alignment, dataStart: dataStart)
    }

    /// A bounds-checked little-endian reader.
    struct Cursor {
        let bytes: UnsafeRawBufferPointer
        let file: String
        var position = 0

        var remaining: Int { bytes.count - position }

        mutating func take<T: FixedWidthInteger>(_ type: T.Type, _ what: @autoclosure () -> String) throws -> T {
            let size = MemoryLayout<T>.size
            guard remaining >= size else { throw GGUFError.truncated(file: file, reading: what(), offset: bytes.count) }
            let v = T(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: T.self))
            position += size
            return v
        }

        mutating func u32(_ what: @autoclosure () -> String) throws -> UInt32 { try take(UInt32.self, what()) }
        mutating func u64(_ what: @autoclosure () -> String) throws -> UInt64 { try take(UInt64.self, what()) }

        mutating func stringBytes(context: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
            let n = try u64("the length of \(context())")
            guard n <= UInt64(GGUF.maxStringLength), n <= UInt64(remaining) else {
                throw GGUFError.stringTooLong(file: file, context: context(), length: n)
            }
            let s = UnsafeRawBufferPointer(rebasing: bytes[position..<(position + Int(n))])
            position += Int(n)
            return s
        }

        mutating func string(context: @autoclosure () -> String) throws -> String {
            String(decoding: try stringBytes(context: context()), as: UTF8.self)
        }

        mutating func stringValue(key: String) throws -> GGUFValue {
            let raw = try stringBytes(context: "the value of '\(key)'")
            if let s = String(validating: raw, as: UTF8.self) { return .string(s) }
            return .bytes(Array(raw))
        }

        mutating func value(_ type: GGUFValueType, key: String) throws -> GGUFValue {
            switch type {
            case .uint8, .int8, .uint16, .int16, .uint32, .int32, .float32, .bool, .uint64, .int64, .float64:
                let size = type.fixedSize!
                guard remaining >= size else { throw GGUFError.truncated(file: file, reading: "the value of '\(key)'", offset: bytes.count) }
                defer { position += size }
                return GGUFValue.scalar(type, at: bytes.baseAddress! + position)
            case .string: return try stringValue(key: key)
            case .array:
                let rawElement = try u32("the element type of '\(key)'")
                guard let element = GGUFValueType(rawValue: rawElement), element != .array else {
                    throw GGUFError.invalidValueType(file: file, key: key, type: rawElement)
                }
                let count = try u64("the element count of '\(key)'")
                // Strings need at least their 8-byte length each.
                let minimum = element.fixedSize ?? 8
                guard count <= UInt64(GGUF.maxArrayElements), count <= UInt64(remaining / minimum) else {
                    throw GGUFError.arrayTooLong(file: file, key: key, count: count)
                }
                if let size = element.fixedSize {
                    let n = Int(count) * size
                    let packed = Array(bytes[position..<(position + n)])
                    position += n
                    return .array(GGUFArray(elementType: element, packed: packed))
                }
                var items: [GGUFValue] = []
                items.reserveCapacity(Int(count))
                for _ in 0..<Int(count) { items.append(try value(element, key: key)) }
                return .array(GGUFArray(element, items))
            }
        }
    }
}
