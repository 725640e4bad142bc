/// The Python globals a weights pickle may name, and nothing else.
///
/// This is the subset of torch's own `weights_only` allowlist (torch/_weights_only_unpickler.py)
/// that state dicts use: the tensor and parameter rebuild functions, the storage classes and
/// dtypes they take, and `collections.OrderedDict`. Every other GLOBAL is refused where it
/// appears (`PyTorchError.forbiddenGlobal`), including the ones torch allows but weights files
/// do not need (`torch.device`, `builtins.set`, `_codecs.encode`, sparse and quantized rebuilds).
enum PickleGlobal: Equatable {
    case orderedDict
    /// `torch._utils._rebuild_tensor` (1), `_rebuild_tensor_v2` (2), `_rebuild_tensor_v3` (3).
    case rebuildTensor(version: Int)
    /// `torch._utils._rebuild_parameter` / `_rebuild_parameter_with_state`.
    case rebuildParameter(withState: Bool)
    /// `torch._tensor._rebuild_from_type_v2`: a tensor carrying Python attributes.
    case rebuildFromType
    /// `torch.Tensor` and `torch.nn.parameter.Parameter`, as type arguments only.
    case tensorClass
    case parameterClass
    /// `torch.FloatStorage`, ... (typed) or `torch.storage.UntypedStorage` (nil).
    case storageClass(TorchScalarType?)
    /// `torch.float32`, `torch.bfloat16`, ... (the dtype argument of `_rebuild_tensor_v3`).
    case dtype(TorchScalarType)

    var qualifiedName: String {
        switch self {
        case .orderedDict: return "collections.OrderedDict"
        case .rebuildTensor(let v): return v == 1 ? "torch._utils._rebuild_tensor" : "torch._utils._rebuild_tensor_v\(v)"
        case .rebuildParameter(let s): return s ? "torch._utils._rebuild_parameter_with_state" : "torch._utils._rebuild_parameter"
        case .rebuildFromType: return "torch._tensor._rebuild_from_type_v2"
        case .tensorClass: return "torch.Tensor"
        case .parameterClass: return "torch.nn.parameter.Parameter"
        case .storageClass(let s): return s.flatMap { t in Self.storageClasses.first { $0.value == t.name }.map { "torch.\($0.key)" } } ?? "torch.storage.UntypedStorage"
        case .dtype(let t): return "torch.\(t.name)"
        }
    }

    /// The global `module.name`, or nil if it is not allowed.
    static func resolve(module: String, name: String) -> PickleGlobal? {
        switch (module, name) {
        case ("collections", "OrderedDict"): return .orderedDict
        case ("torch._utils", "_rebuild_tensor"): return .rebuildTensor(version: 1)
        case ("torch._utils", "_rebuild_tensor_v2"): return .rebuildTensor(version: 2)
        case ("torch._utils", "_rebuild_tensor_v3"): return .rebuildTensor(version: 3)
        case ("torch._utils", "_rebuild_parameter"): return .rebuildParameter(withState: false)
        case ("torch._utils", "_rebuild_parameter_with_state"): return .rebuildParameter(withState: true)
        case ("torch._tensor", "_rebuild_from_type_v2"): return .rebuildFromType
        case ("torch", "Tensor"), ("torch._tensor", "Tensor"): return .tensorClass
        case ("torch.nn.parameter", "Parameter"): return .parameterClass
        case ("torch.storage", "UntypedStorage"), ("torch", "UntypedStorage"): return .storageClass(nil)
        case ("torch", _):
            if let scalar = storageClasses[name].flatMap(scalarType) { return .storageClass(scalar) }
            if let scalar = scalarType(name) { return .dtype(scalar) }
            return nil
        default: return nil
        }
    }

    /// Legacy typed storage classes → the torch dtype name they hold (PT
    /// `_dtype_to_storage_type_map`).
    static let storageClasses: [String: String] = [
        "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
        "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
        "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
        "ComplexFloatStorage": "complex64", "ComplexDoubleStorage": "complex128",
        "QInt8Storage": "qint8", "QUInt8Storage": "quint8", "QInt32Storage": "qint32",
        "QUInt4x2Storage": "quint4x2", "QUInt2x4Storage": "quint2x4",
    ]

    /// torch dtype name → element size and nopekit type (nil: known to torch, not representable
    /// here; such a tensor is refused by name rather than its global being called forbidden).
    static func scalarType(_ name: String) -> TorchScalarType? {
        scalarTable[name].map { TorchScalarType(name: name, elementSize: $0.0, dtype: $0.1) }
    }

    private static let scalarTable: [String: (Int, DType?)] = [
        "float64": (8, .f64), "float32": (4, .f32), "float16": (2, .f16), "bfloat16": (2, .bf16),
        "int64": (8, .i64), "int32": (4, .i32), "int16": (2, .i16), "int8": (1, .i8),
        "uint8": (1, .u8), "uint16": (2, .u16), "uint32": (4, .u32), "uint64": (8, .u64),
        "bool": (1, .bool), "complex64": (8, .c64),
        "float8_e4m3fn": (1, .f8e4m3), "float8_e5m2": (1, .f8e5m2),
        "float8_e4m3fnuz": (1, .f8e4m3fnuz), "float8_e5m2fnuz": (1, .f8e5m2fnuz),
        "float8_e8m0fnu": (1, .f8e8m0),
        // Known, refused per tensor with unsupportedDType:
        "complex128": (16, nil), "complex32": (4, nil), "float4_e2m1fn_x2": (1, nil),
        "qint8": (1, nil), "quint8": (1, nil), "qint32": (4, nil), "quint4x2": (1, nil), "quint2x4": (1, nil),
    ]
}
