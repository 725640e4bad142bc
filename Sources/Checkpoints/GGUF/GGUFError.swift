/// Every way a GGUF file can be rejected: the checks of llama.cpp's `gguf_init_from_reader`
/// (formats.md §2.4) and its model loader's bounds check, each naming the file and the key or
/// tensor, with what would fix it.
public enum GGUFError: Error, CustomStringConvertible, Equatable {
    /// The file ends inside the header, the metadata or the tensor infos.
    case truncated(file: String, reading: String, offset: Int)
    case badMagic(file: String)
    /// The version field reads as byte-swapped: a big-endian file.
    case bigEndian(file: String)
    case unsupportedVersion(file: String, version: UInt32)
    case stringTooLong(file: String, context: String, length: UInt64)
    case arrayTooLong(file: String, key: String, count: UInt64)
    case duplicateKey(file: String, key: String)
    case invalidValueType(file: String, key: String, type: UInt32)
    case emptyKey(file: String, index: Int)
    case badAlignment(file: String, detail: String)
    case tensorNameTooLong(file: String, name: String)
    case duplicateTensor(file: String, name: String)
    case tooManyDimensions(file: String, tensor: String, dimensions: UInt32)
    case invalidDimension(file: String, tensor: String, value: UInt64)
    case elementCountOverflow(file: String, tensor: String)
    case unknownTensorType(file: String, tensor: String, type: UInt32)
    case blockMisaligned(file: String, tensor: String, type: GGMLType, rowLength: Int)
    case misorderedOffsets(file: String, tensor: String, offset: UInt64, expected: Int)
    case dataOutOfBounds(file: String, tensor: String, end: Int, fileSize: Int)
    case dataStartOutOfBounds(file: String, dataStart: Int, fileSize: Int)
    /// Split files that do not belong together.
    case invalidSplit(file: String, detail: String)

    public var kind: String {
        switch self {
        case .truncated: return "truncated"
        case .badMagic: return "badMagic"
        case .bigEndian: return "bigEndian"
        case .unsupportedVersion: return "unsupportedVersion"
        case .stringTooLong: return "stringTooLong"
        case .arrayTooLong: return "arrayTooLong"
        case .duplicateKey: return "duplicateKey"
        case .invalidValueType: return "invalidValueType"
        case .emptyKey: return "emptyKey"
        case .badAlignment: return "badAlignment"
        case .tensorNameTooLong: return "tensorNameTooLong"
        case .duplicateTensor: return "duplicateTensor"
        case .tooManyDimensions: return "tooManyDimensions"
        case .invalidDimension: return "invalidDimension"
        case .elementCountOverflow: return "elementCountOverflow"
        case .unknownTensorType: return "unknownTensorType"
        case .blockMisaligned: return "blockMisaligned"
        case .misorderedOffsets: return "misorderedOffsets"
        case .dataOutOfBounds: return "dataOutOfBounds"
        case .dataStartOutOfBounds: return "dataStartOutOfBounds"
        case .invalidSplit: return "invalidSplit"
        }
    }

    public var description: String {
        switch self {
        case .truncated(let f, let what, let at):
            return "\(f): file ends at byte \(at) while reading \(what); the file is truncated"
        case .badMagic(let f):
            return "\(f): not a GGUF file (the first four bytes are not \"GGUF\")"
        case .bigEndian(let f):
            return "\(f): big-endian GGUF; nopekit reads little-endian files only (convert it on a little-endian machine with gguf-py)"
        case .unsupportedVersion(let f, let v):
            return "\(f): GGUF version \(v) is not supported (versions 2 and 3 are; version 1 files must be re-converted)"
        case .stringTooLong(let f, let c, let n):
            return "\(f): \(c): string length \(n) runs past the end of the file or over 1 GiB"
        case .arrayTooLong(let f, let k, let n):
            return "\(f): key '\(k)': array of \(n) elements runs past the end of the file or over 2^30 elements"
        case .duplicateKey(let f, let k):
            return "\(f): metadata key '\(k)' appears twice"
        case .invalidValueType(let f, let k, let t):
            return "\(f): key '\(k)': invalid value type \(t) (valid: 0–12; arrays of arrays are not allowed)"
        case .emptyKey(let f, let i):
            return "\(f): metadata entry \(i) has an empty key"
        case .badAlignment(let f, let d):
            return "\(f): general.alignment \(d); it must be a UINT32 power of two"
        case .tensorNameTooLong(let f, let n):
            return "\(f): tensor name '\(n.prefix(80))' is \(n.utf8.count) bytes; ggml allows at most 63"
        case .duplicateTensor(let f, let n):
            return "\(f): tensor '\(n)' appears twice"
        case .tooManyDimensions(let f, let t, let n):
            return "\(f): tensor '\(t)' has \(n) dimensions; ggml allows at most 4"
        case .invalidDimension(let f, let t, let v):
            return "\(f): tensor '\(t)' has dimension \(v), over 2^63 − 1"
        case .elementCountOverflow(let f, let t):
            return "\(f): tensor '\(t)': element count or byte size overflows"
        case .unknownTensorType(let f, let t, let type):
            return "\(f): tensor '\(t)' has ggml type id \(type), which is removed or unknown to nopekit"
        case .blockMisaligned(let f, let t, let type, let n):
            return "\(f): tensor '\(t)': row length \(n) is not a multiple of the \(type.name) block size \(type.blockElements)"
        case .misorderedOffsets(let f, let t, let o, let e):
            return "\(f): tensor '\(t)' has data offset \(o), expected \(e): tensor data must be contiguous and aligned, in tensor-info order"
        case .dataOutOfBounds(let f, let t, let end, let size):
            return "\(f): tensor '\(t)' data (with padding) ends at byte \(end) but the file has \(size); the file is truncated"
        case .dataStartOutOfBounds(let f, let start, let size):
            return "\(f): tensor data would start at byte \(start) but the file has \(size); the file is truncated"
        case .invalidSplit(let f, let d):
            return "\(f): \(d)"
        }
    }
}
