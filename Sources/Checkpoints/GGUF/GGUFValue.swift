/// One GGUF metadata value, typed as the file stores it, so a rewrite keeps every type.
public enum GGUFValue: Equatable, Sendable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), uint64(UInt64), int64(Int64), float64(Double)
    /// A STRING holding valid UTF-8.
    case string(String)
    /// A STRING whose bytes are not valid UTF-8 (some vocabularies hold partial sequences);
    /// kept as bytes so it is written back unchanged.
    case bytes([UInt8])
    /// An ARRAY (never nested: llama.cpp refuses that).
    indirect case array(GGUFArray)

    /// An ARRAY of `elementType` holding `items`.
    public static func array(_ elementType: GGUFValueType, _ items: [GGUFValue]) -> GGUFValue {
        .array(GGUFArray(elementType, items))
    }

    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        case .string, .bytes: return .string
        case .array: return .array
        }
    }

    /// Any integer type as Int (nil if it does not fit or is not an integer).
    public var intValue: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(v)
        default: return nil
        }
    }

    public var doubleValue: Double? {
        switch self {
        // Through the shortest decimal, so 1e-5 stored as f32 reads as 1e-5, not 9.99999974e-06.
        case .float32(let v): return Double("\(v)") ?? Double(v)
        case .float64(let v): return v
        default: return intValue.map(Double.init)
        }
    }

    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    /// The elements of an ARRAY (decoded one by one from a packed array's bytes).
    public var arrayValue: [GGUFValue]? { if case .array(let a) = self { return Array(a) } else { return nil } }

    /// A short human rendering: scalars as themselves, long strings cut, arrays summarised
    /// (`[32000 × STRING] "<unk>", "<s>", …`), as gguf_dump does.
    public func summary(maxItems: Int = 4, maxString: Int = 60) -> String {
        func cut(_ s: String) -> String {
            let escaped = s.unicodeScalars.map { c -> String in
                switch c {
                case "\n": return "\\n"
                case "\t": return "\\t"
                case "\"": return "\\\""
                case "\\": return "\\\\"
                default: return c.value < 0x20 || c.value == 0x7F ? "\\u{\(String(c.value, radix: 16))}" : String(c)
                }
            }.joined()
            return escaped.count > maxString ? "\"\(escaped.prefix(maxString))…\"" : "\"\(escaped)\""
        }
        switch self {
        case .string(let s): return cut(s)
        case .bytes(let b): return "<\(b.count) bytes, not UTF-8>"
        case .array(let items):
            let shown = items.prefix(maxItems).map { $0.summary(maxItems: maxItems, maxString: 24) }.joined(separator: ", ")
            if items.count <= maxItems { return "[\(shown)]" }
            return "[\(items.count) × \(items.elementType)] \(shown), …"
        case .float32(let v): return "\(v)"
        case .float64(let v): return "\(v)"
        case .bool(let b): return b ? "true" : "false"
        case .uint64(let v): return String(v)
        case .int64(let v): return String(v)
        default: return intValue.map(String.init) ?? "\(self)"
        }
    }
}

/// A GGUF ARRAY. Numbers and booleans stay packed as the file stores them (little-endian, one
/// copy of the bytes) and are decoded when read: as enum values they took about 41 bytes each,
/// so a 25 MB file of byte arrays took 1 GB to inspect (issue 13). Strings are kept decoded.
public struct GGUFArray: RandomAccessCollection, Equatable, Sendable {
    public let elementType: GGUFValueType
    private enum Storage: Equatable, Sendable {
        case values([GGUFValue])
        case packed([UInt8])
    }
    private let storage: Storage

    /// An array of `items`, each of `elementType` (numbers and booleans are packed).
    public init(_ elementType: GGUFValueType, _ items: [GGUFValue]) {
        self.elementType = elementType
        if elementType.fixedSize != nil, items.allSatisfy({ $0.type == elementType }) {
            var w = GGUFWriter.ByteWriter()
            for item in items { w.value(item) }
            storage = .packed(w.bytes)
        } else {
            storage = .values(items)
        }
    }

    /// An array of fixed-size elements from their stored bytes (`bytes.count` a multiple of
    /// the element size).
    public init(elementType: GGUFValueType, packed bytes: [UInt8]) {
        precondition(elementType.fixedSize.map { bytes.count % $0 == 0 } ?? false, "packed bytes of a \(elementType) array")
        self.elementType = elementType
        storage = .packed(bytes)
    }

    /// The stored bytes of a packed array (what a writer copies back unchanged).
    public var packedBytes: [UInt8]? { if case .packed(let b) = storage { return b } else { return nil } }

    public var startIndex: Int { 0 }
    public var endIndex: Int {
        switch storage {
        case .values(let v): return v.count
        case .packed(let b): return b.count / elementType.fixedSize!
        }
    }

    public subscript(i: Int) -> GGUFValue {
        switch storage {
        case .values(let v): return v[i]
        case .packed(let b):
            let size = elementType.fixedSize!
            precondition(i >= 0 && i * size < b.count, "index \(i) outside a GGUF array of \(count)")
            return b.withUnsafeBytes { GGUFValue.scalar(elementType, at: $0.baseAddress! + i * size) }
        }
    }

    /// Same element type and the same elements, however each side is stored.
    public static func == (a: GGUFArray, b: GGUFArray) -> Bool {
        if a.elementType != b.elementType || a.count != b.count { return false }
        if let x = a.packedBytes, let y = b.packedBytes, a.elementType != .float32, a.elementType != .float64, a.elementType != .bool {
            return x == y
        }
        return a.elementsEqual(b)
    }
}

/// One key–value pair of GGUF metadata; files keep them in order.
public struct GGUFKeyValue: Equatable, Sendable {
    public var key: String
    public var value: GGUFValue
    public init(_ key: String, _ value: GGUFValue) { self.key = key; self.value = value }
}

extension Array where Element == GGUFKeyValue {
    /// The value of `key`, if present.
    public subscript(key: String) -> GGUFValue? { first(where: { $0.key == key })?.value }
}

extension GGUFValue {
    /// The fixed-size scalar of `type` stored little-endian at `p` (every type but string and
    /// array; the caller has checked the bytes are there): the one decoder of metadata scalars,
    /// for the header's cursor and packed arrays alike.
    static func scalar(_ type: GGUFValueType, at p: UnsafeRawPointer) -> GGUFValue {
        func le<T: FixedWidthInteger>(_: T.Type) -> T { T(littleEndian: p.loadUnaligned(as: T.self)) }
        switch type {
        case .uint8: return .uint8(le(UInt8.self))
        case .int8: return .int8(le(Int8.self))
        case .bool: return .bool(le(UInt8.self) != 0)
        case .uint16: return .uint16(le(UInt16.self))
        case .int16: return .int16(le(Int16.self))
        case .uint32: return .uint32(le(UInt32.self))
        case .int32: return .int32(le(Int32.self))
        case .float32: return .float32(Float(bitPattern: le(UInt32.self)))
        case .uint64: return .uint64(le(UInt64.self))
        case .int64: return .int64(le(Int64.self))
        case .float64: return .float64(Double(bitPattern: le(UInt64.self)))
        case .string, .array: preconditionFailure("\(type) is not a fixed-size scalar")
        }
    }
}
