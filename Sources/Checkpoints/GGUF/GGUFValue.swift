/// One GGUF metadata value, typed as the file stores it, so a rewrite keeps every type.
public enum GGUFValue: Equatable, Sendable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), uint64(UInt64), int64(Int64), float64(Double)
    /// A STRING holding valid UTF-8.
    case string(String)
    /// A STRING whose bytes are not valid UTF-8 (some vocabularies hold partial sequences);
    /// kept as bytes so it is written back unchanged.
    case bytes([UInt8])
    /// An ARRAY: its element type and elements (never nested: llama.cpp refuses that).
    indirect case array(GGUFValueType, [GGUFValue])

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
    public var arrayValue: [GGUFValue]? { if case .array(_, let a) = self { return a } else { return nil } }

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
        case .array(let t, let items):
            let shown = items.prefix(maxItems).map { $0.summary(maxItems: maxItems, maxString: 24) }.joined(separator: ", ")
            if items.count <= maxItems { return "[\(shown)]" }
            return "[\(items.count) × \(t)] \(shown), …"
        case .float32(let v): return "\(v)"
        case .float64(let v): return "\(v)"
        case .bool(let b): return b ? "true" : "false"
        case .uint64(let v): return String(v)
        case .int64(let v): return String(v)
        default: return intValue.map(String.init) ?? "\(self)"
        }
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
