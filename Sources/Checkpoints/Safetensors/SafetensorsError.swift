/// Every way a safetensors file or sharded folder can be rejected.
///
/// The cases follow the reference crate's `SafeTensorError` (huggingface/safetensors
/// `tensor.rs`), checked in the same order, plus what the crate lets through and nopekit does
/// not: duplicate tensor names and a stale shard index. Each names the file and the tensor or
/// field, and says what is wrong in words a user can act on.
public enum SafetensorsError: Error, CustomStringConvertible, Equatable {
    /// The file is shorter than the 8-byte header length.
    case headerTooSmall(file: String)
    /// The header length is over 100,000,000 bytes (the crate's cap).
    case headerTooLarge(file: String, length: UInt64)
    /// `8 + N` runs past the end of the file.
    case invalidHeaderLength(file: String, length: UInt64, fileSize: Int)
    /// The header bytes are not UTF-8.
    case invalidUTF8(file: String)
    /// The header is not JSON at all.
    case invalidJSON(file: String, detail: String)
    /// The header is JSON but not a safetensors header (wrong types, missing fields...).
    case invalidHeader(file: String, detail: String)
    /// A dtype string that is not one of the safetensors codes.
    case unknownDType(file: String, tensor: String, dtype: String)
    /// The same tensor name appears twice in one header.
    case duplicateTensor(file: String, name: String)
    /// After sorting by offset, a tensor does not start where the previous one ended (a gap or
    /// an overlap), the first does not start at 0, or an end precedes its begin.
    case invalidOffset(file: String, tensor: String, detail: String)
    /// Element count or byte count of a shape overflows.
    case validationOverflow(file: String, tensor: String)
    /// The byte range does not match shape × dtype size (or a packed sub-byte tensor does not
    /// end on a byte boundary).
    case tensorInvalidInfo(file: String, tensor: String, detail: String)
    /// The data section is not exactly as long as the last tensor's end (trailing bytes, or a
    /// truncated file).
    case incompleteBuffer(file: String, expectedSize: Int, actualSize: Int)
    /// A sharded folder whose index and shards disagree.
    case staleIndex(folder: String, detail: String)
    /// The same tensor name in two shards.
    case duplicateAcrossShards(folder: String, name: String, shards: [String])
    /// A folder with neither `model.safetensors` nor `model.safetensors.index.json`.
    case noCheckpoint(folder: String)
    /// The index file itself is malformed.
    case invalidIndex(file: String, detail: String)

    /// A stable short name of the case, used by tests and `--json` error output.
    public var kind: String {
        switch self {
        case .headerTooSmall: return "headerTooSmall"
        case .headerTooLarge: return "headerTooLarge"
        case .invalidHeaderLength: return "invalidHeaderLength"
        case .invalidUTF8: return "invalidUTF8"
        case .invalidJSON: return "invalidJSON"
        case .invalidHeader: return "invalidHeader"
        case .unknownDType: return "unknownDType"
        case .duplicateTensor: return "duplicateTensor"
        case .invalidOffset: return "invalidOffset"
        case .validationOverflow: return "validationOverflow"
        case .tensorInvalidInfo: return "tensorInvalidInfo"
        case .incompleteBuffer: return "incompleteBuffer"
        case .staleIndex: return "staleIndex"
        case .duplicateAcrossShards: return "duplicateAcrossShards"
        case .noCheckpoint: return "noCheckpoint"
        case .invalidIndex: return "invalidIndex"
        }
    }

    public var description: String {
        switch self {
        case .headerTooSmall(let f):
            return "\(f): not a safetensors file: shorter than the 8-byte header length"
        case .headerTooLarge(let f, let n):
            return "\(f): header length \(n) exceeds the 100,000,000-byte limit; the file is corrupt or not safetensors"
        case .invalidHeaderLength(let f, let n, let size):
            return "\(f): header length \(n) runs past the end of the \(size)-byte file; the file is truncated or not safetensors"
        case .invalidUTF8(let f):
            return "\(f): header is not valid UTF-8"
        case .invalidJSON(let f, let d):
            return "\(f): header is not valid JSON: \(d)"
        case .invalidHeader(let f, let d):
            return "\(f): invalid header: \(d)"
        case .unknownDType(let f, let t, let d):
            return "\(f): tensor '\(t)' has unknown dtype \"\(d)\" (expected one of \(DType.allCases.map(\.code).joined(separator: ", ")))"
        case .duplicateTensor(let f, let n):
            return "\(f): tensor name '\(n)' appears twice in the header; the file is ambiguous and was refused"
        case .invalidOffset(let f, let t, let d):
            return "\(f): tensor '\(t)' has invalid data_offsets: \(d)"
        case .validationOverflow(let f, let t):
            return "\(f): tensor '\(t)': shape × dtype size overflows"
        case .tensorInvalidInfo(let f, let t, let d):
            return "\(f): tensor '\(t)': \(d)"
        case .incompleteBuffer(let f, let e, let a):
            return a < e
                ? "\(f): file is truncated: \(a) bytes, the header describes \(e)"
                : "\(f): \(a - e) unexpected trailing bytes after the last tensor (file is \(a) bytes, header describes \(e))"
        case .staleIndex(let f, let d):
            return "\(f): model.safetensors.index.json does not match the shards: \(d); regenerate the index or re-download the checkpoint"
        case .duplicateAcrossShards(let f, let n, let s):
            return "\(f): tensor '\(n)' is stored in more than one shard (\(s.joined(separator: ", ")))"
        case .noCheckpoint(let f):
            return "\(f): no model.safetensors, model.safetensors.index.json or pytorch_model.bin in this folder"
        case .invalidIndex(let f, let d):
            return "\(f): invalid index file: \(d)"
        }
    }
}
