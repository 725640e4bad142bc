/// The values the restricted unpickler can build. There is no "object" case: the machine never
/// constructs anything but these, and a torch tensor is only ever a description of where its
/// elements are (`TensorRef`), never data.
indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case tuple(PickleTuple)
    /// Lists and dicts are boxes, as in Python: the memo and the stack share one object that
    /// APPEND/SETITEM(S) fill in place.
    case list(PickleList)
    case dict(PickleDict)
    /// `set()` (EMPTY_SET). ADDITEMS is not allowed, so a set is always empty.
    case emptySet
    /// An allowlisted global: a rebuild function, a storage class, a dtype, `OrderedDict`, ...
    case global(PickleGlobal)
    /// A persistent id `('storage', type, key, location, numel)`: a zip record, not yet read.
    case storage(StorageRef)
    /// The result of a tensor rebuild function.
    case tensor(TensorRef)

    /// Nesting depth (0 for a scalar), tracked so that release of a deep value cannot overflow
    /// the stack; see `Unpickler.maxDepth`.
    var depth: Int {
        switch self {
        case .tuple(let t): return t.depth
        case .list(let l): return l.depth
        case .dict(let d): return d.depth
        default: return 0
        }
    }

    /// A short description for error messages (never recursive).
    var kindName: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int(let i): return "int \(i)"
        case .float: return "float"
        case .string(let s): return "string '\(s.prefix(40))'"
        case .tuple(let t): return "tuple of \(t.items.count)"
        case .list(let l): return "list of \(l.items.count)"
        case .dict(let d): return "dict of \(d.entries.count)"
        case .emptySet: return "set"
        case .global(let g): return g.qualifiedName
        case .storage: return "storage"
        case .tensor: return "tensor"
        }
    }
}

struct PickleTuple {
    let items: [PickleValue]
    let depth: Int
}

/// A Python list under construction. Once it has been put inside another container it is
/// `sealed`: real torch pickles fill every container before nesting it, and refusing later
/// mutation is what rules out cycles and keeps `depth` exact.
final class PickleList {
    var items: [PickleValue] = []
    var depth = 1
    var sealed = false
}

/// A Python dict (or `collections.OrderedDict`; they differ only in name here), in insertion
/// order. A repeated key replaces the value in place, as in Python.
final class PickleDict {
    private(set) var entries: [(key: PickleValue, value: PickleValue)] = []
    /// Where each string key is in `entries`, so that a repeated key is found without a scan.
    private var stringKeys: [String: Int] = [:]
    var depth = 1
    var sealed = false
    let isOrdered: Bool

    init(ordered: Bool) { isOrdered = ordered }

    /// `dict[key] = value`. Keys other than strings are not compared (they are appended; the
    /// state-dict walk refuses them anyway).
    func set(_ key: PickleValue, _ value: PickleValue) {
        if case .string(let s) = key {
            if let at = stringKeys[s] {
                entries[at].value = value
                return
            }
            stringKeys[s] = entries.count
        }
        entries.append((key, value))
    }

    subscript(key: String) -> PickleValue? { stringKeys[key].map { entries[$0].value } }
}

/// A torch element type as pickles name it (`torch.float32`, or implied by `torch.FloatStorage`).
struct TorchScalarType: Equatable {
    /// torch's name, e.g. `float32`, `bfloat16`, `complex128`.
    let name: String
    /// Bytes per element (for `float4_e2m1fn_x2`, per pair).
    let elementSize: Int
    /// The nopekit type, or nil for types nopekit cannot represent (refused per tensor).
    let dtype: DType?
    /// Components swapped separately when converting from big-endian (complex: each half).
    var swapUnit: Int { dtype == .c64 ? elementSize / 2 : elementSize }
}

/// A storage as a persistent id describes it.
struct StorageRef: Equatable {
    /// The record name under `<root>/data/`.
    let key: String
    /// The element type of a typed storage class (`torch.FloatStorage`), or nil for
    /// `torch.storage.UntypedStorage`, whose `numel` counts bytes.
    let scalar: TorchScalarType?
    let numel: Int
    let location: String

    /// Declared length in bytes, or nil on overflow or a negative count.
    var byteCount: Int? {
        guard numel >= 0 else { return nil }
        let (n, overflow) = numel.multipliedReportingOverflow(by: scalar?.elementSize ?? 1)
        return overflow ? nil : n
    }
}

/// A tensor as `_rebuild_tensor_v2/v3` describes it: a view of a storage. Sizes, strides and
/// the offset are in elements and are validated by `PyTorchFile`, which knows the tensor's name.
struct TensorRef: Equatable {
    let storage: StorageRef
    let scalar: TorchScalarType
    let storageOffset: Int
    let size: [Int]
    let stride: [Int]
}
