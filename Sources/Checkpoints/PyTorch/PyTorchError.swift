/// Every way a PyTorch `.bin` checkpoint (or a folder of `.bin` shards) can be rejected.
///
/// A `.bin` file is a zip archive holding a pickle, and a pickle is a program: loading one with
/// Python's `pickle` runs whatever it says. nopekit never runs it. It reads the zip itself and
/// interprets the pickle with a small allowlisted machine (`Unpickler`) that can only build
/// plain values and tensor descriptions, so a hostile file can at worst be refused. Each case
/// names the file and, where there is one, the zip entry, the tensor or the pickle byte, and
/// says what the user can do about it.
public enum PyTorchError: Error, CustomStringConvertible, Equatable {
    // MARK: The zip container

    /// The file is not a zip archive (and not a legacy torch file either).
    case notAZip(file: String, detail: String)
    /// A pre-1.6 checkpoint (`torch.save(..., _use_new_zipfile_serialization=False)`, a chain of
    /// raw pickles rather than a zip) that uses something the legacy reader does not support:
    /// big-endian storages, storage views, another protocol version.
    case legacyFormat(file: String, detail: String)
    /// The zip structure is broken: truncated, bad signatures, sizes or offsets outside the file,
    /// overlapping entries, duplicate names, multi-disk archives.
    case invalidZip(file: String, detail: String)
    /// An entry nopekit cannot read: encrypted, or compressed with a method other than STORED (0)
    /// or DEFLATED (8).
    case unsupportedZipEntry(file: String, entry: String, detail: String)
    /// An entry whose bytes do not decode: a broken deflate stream, a size or CRC-32 that
    /// disagrees with the central directory.
    case corruptEntry(file: String, entry: String, detail: String)

    // MARK: The torch archive layout

    /// A zip, but not one `torch.save` wrote: no `<root>/data.pkl`, or more than one.
    case notATorchCheckpoint(file: String, detail: String)
    /// The `byteorder` record is neither `little` nor `big`.
    case unsupportedByteOrder(file: String, value: String)

    // MARK: The pickle

    /// An opcode outside the allowlist (the opcodes torch's own `weights_only` unpickler accepts).
    case forbiddenOpcode(file: String, opcode: UInt8, offset: Int)
    /// A GLOBAL naming anything but the torch rebuild functions, storage classes, dtypes and
    /// `collections.OrderedDict`. Raised at the GLOBAL opcode itself, before the name is used.
    case forbiddenGlobal(file: String, module: String, name: String)
    /// REDUCE, NEWOBJ or BUILD applied to something that is allowlisted as a value but not as a
    /// call (a storage class, a dtype, a tensor), or with arguments of the wrong shape.
    case forbiddenCall(file: String, callee: String, offset: Int, detail: String)
    /// The pickle is malformed: truncated, stack underflow, an unknown memo index, invalid UTF-8,
    /// or a size limit exceeded.
    case invalidPickle(file: String, offset: Int, detail: String)

    // MARK: The tensors

    /// The unpickled object is not a name → tensor dict nopekit understands.
    case invalidStructure(file: String, detail: String)
    /// A tensor whose element type has no nopekit `DType` (complex128, quantised, float4, ...).
    case unsupportedDType(file: String, tensor: String, dtype: String)
    /// A tensor's storage key has no `data/<key>` record.
    case missingStorage(file: String, tensor: String, key: String)
    /// A storage's `data/<key>` record is not as long as the pickle declares.
    case storageSizeMismatch(file: String, key: String, declaredBytes: Int, recordBytes: Int)
    /// A tensor view reaches outside its storage, or has a negative size or stride.
    case tensorOutOfBounds(file: String, tensor: String, detail: String)
    /// A tensor's element or byte count overflows.
    case validationOverflow(file: String, tensor: String)

    // MARK: Sharded folders

    /// A sharded folder whose `pytorch_model.bin.index.json` and shards disagree.
    case staleIndex(folder: String, detail: String)
    /// The same tensor name in two shards.
    case duplicateAcrossShards(folder: String, name: String, shards: [String])
    /// A folder with neither `pytorch_model.bin` nor `pytorch_model.bin.index.json`.
    case noCheckpoint(folder: String)
    /// The index file itself is malformed.
    case invalidIndex(file: String, detail: String)

    /// A stable short name of the case, used by tests and `--json` error output.
    public var kind: String {
        switch self {
        case .notAZip: return "notAZip"
        case .legacyFormat: return "legacyFormat"
        case .invalidZip: return "invalidZip"
        case .unsupportedZipEntry: return "unsupportedZipEntry"
        case .corruptEntry: return "corruptEntry"
        case .notATorchCheckpoint: return "notATorchCheckpoint"
        case .unsupportedByteOrder: return "unsupportedByteOrder"
        case .forbiddenOpcode: return "forbiddenOpcode"
        case .forbiddenGlobal: return "forbiddenGlobal"
        case .forbiddenCall: return "forbiddenCall"
        case .invalidPickle: return "invalidPickle"
        case .invalidStructure: return "invalidStructure"
        case .unsupportedDType: return "unsupportedDType"
        case .missingStorage: return "missingStorage"
        case .storageSizeMismatch: return "storageSizeMismatch"
        case .tensorOutOfBounds: return "tensorOutOfBounds"
        case .validationOverflow: return "validationOverflow"
        case .staleIndex: return "staleIndex"
        case .duplicateAcrossShards: return "duplicateAcrossShards"
        case .noCheckpoint: return "noCheckpoint"
        case .invalidIndex: return "invalidIndex"
        }
    }

    /// What to do about a file that is damaged rather than hostile.
    private static let redownload = "the file is damaged or incomplete; download or save it again"
    /// What to do about a file that tries to run code.
    private static let untrusted = "nopekit never executes pickled code; do not load this file with torch.load(weights_only=False) either. If you trust its source, load it in Python and re-save the state dict with torch.save or safetensors"

    public var description: String {
        switch self {
        case .notAZip(let f, let d):
            return "\(f): not a PyTorch checkpoint (\(d)); expected a zip archive written by torch.save"
        case .legacyFormat(let f, let d):
            return "\(f): legacy (pre-1.6, non-zip) torch.save file with \(d), which nopekit does not read; re-save it in Python with torch.save(torch.load(path, weights_only=True), new_path), or convert it to safetensors"
        case .invalidZip(let f, let d):
            return "\(f): invalid zip archive: \(d); \(Self.redownload)"
        case .unsupportedZipEntry(let f, let e, let d):
            return "\(f): zip entry '\(e)': \(d); nopekit reads STORED and DEFLATED, unencrypted entries only: re-save the checkpoint with torch.save"
        case .corruptEntry(let f, let e, let d):
            return "\(f): zip entry '\(e)' is corrupt: \(d); \(Self.redownload)"
        case .notATorchCheckpoint(let f, let d):
            return "\(f): a zip archive, but not a torch.save checkpoint: \(d)"
        case .unsupportedByteOrder(let f, let v):
            return "\(f): the byteorder record says '\(v)'; torch writes 'little' or 'big'. \(Self.redownload)"
        case .forbiddenOpcode(let f, let op, let at):
            let name = PickleOpcode.name(op).map { " (\($0))" } ?? ""
            return "\(f): data.pkl byte \(at): pickle opcode 0x\(String(op, radix: 16, uppercase: false))\(name) is not allowed in a weights file; \(Self.untrusted)"
        case .forbiddenGlobal(let f, let m, let n):
            return "\(f): data.pkl refers to the Python global '\(m).\(n)', which a weights file has no reason to use (it could run code when loaded by Python); refused. \(Self.untrusted)"
        case .forbiddenCall(let f, let c, let at, let d):
            return "\(f): data.pkl byte \(at): refused to call '\(c)': \(d); \(Self.untrusted)"
        case .invalidPickle(let f, let at, let d):
            return "\(f): data.pkl byte \(at): malformed pickle: \(d); \(Self.redownload)"
        case .invalidStructure(let f, let d):
            return "\(f): \(d); nopekit reads checkpoints that hold a dict of name → tensor (a state_dict), optionally under a 'state_dict' or 'model' key"
        case .unsupportedDType(let f, let t, let d):
            return "\(f): tensor '\(t)' has dtype \(d), which nopekit cannot represent; convert it in Python (e.g. to float32 or bfloat16) and re-save"
        case .missingStorage(let f, let t, let k):
            return "\(f): tensor '\(t)' uses storage '\(k)' but the archive has no data/\(k) record; \(Self.redownload)"
        case .storageSizeMismatch(let f, let k, let declared, let record):
            return "\(f): storage data/\(k) holds \(record) bytes but the pickle declares \(declared); \(Self.redownload)"
        case .tensorOutOfBounds(let f, let t, let d):
            return "\(f): tensor '\(t)': \(d); \(Self.redownload)"
        case .validationOverflow(let f, let t):
            return "\(f): tensor '\(t)': its element or byte count overflows; \(Self.redownload)"
        case .staleIndex(let f, let d):
            return "\(f): pytorch_model.bin.index.json does not match the shards: \(d); regenerate the index or re-download the checkpoint"
        case .duplicateAcrossShards(let f, let n, let s):
            return "\(f): tensor '\(n)' is stored in more than one shard (\(s.joined(separator: ", ")))"
        case .noCheckpoint(let f):
            return "\(f): no pytorch_model.bin or pytorch_model.bin.index.json in this folder"
        case .invalidIndex(let f, let d):
            return "\(f): invalid index file: \(d)"
        }
    }
}
