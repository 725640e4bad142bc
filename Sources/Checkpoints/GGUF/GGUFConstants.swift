/// GGUF's constants in one place, as gguf-py's `constants.py` keeps them (ggml docs/gguf.md).
public enum GGUF {
    /// "GGUF" as the first four bytes.
    public static let magic: [UInt8] = [0x47, 0x47, 0x55, 0x46]
    /// Versions nopekit reads; it writes 3. (v1 used 32-bit counts and is refused, as llama.cpp does.)
    public static let readableVersions: ClosedRange<UInt32> = 2...3
    public static let writtenVersion: UInt32 = 3
    /// Alignment of the data section and of every tensor when `general.alignment` is absent.
    public static let defaultAlignment = 32
    /// llama.cpp's limits (gguf.cpp): string bytes and array elements.
    public static let maxStringLength = 1 << 30
    public static let maxArrayElements = 1 << 30
    /// Tensor names must be shorter than ggml's GGML_MAX_NAME (64).
    public static let maxNameLength = 63
    /// ggml tensors have at most four dimensions.
    public static let maxDimensions = 4

    /// Standard metadata keys (gguf-py `Keys`); `{arch}` keys are built with `arch(_:_:)`.
    public enum Key {
        public static let architecture = "general.architecture"
        public static let name = "general.name"
        public static let alignment = "general.alignment"
        public static let fileType = "general.file_type"
        public static let quantizationVersion = "general.quantization_version"
        public static let splitNumber = "split.no"
        public static let splitCount = "split.count"
        public static let splitTensorCount = "split.tensors.count"

        public static func arch(_ arch: String, _ suffix: String) -> String { "\(arch).\(suffix)" }
        public static let contextLength = "context_length"
        public static let embeddingLength = "embedding_length"
        public static let blockCount = "block_count"
        public static let feedForwardLength = "feed_forward_length"
        public static let headCount = "attention.head_count"
        public static let headCountKV = "attention.head_count_kv"
        public static let rmsEpsilon = "attention.layer_norm_rms_epsilon"
        public static let keyLength = "attention.key_length"
        public static let valueLength = "attention.value_length"
        public static let ropeDimensionCount = "rope.dimension_count"
        public static let ropeFreqBase = "rope.freq_base"
        public static let ropeScalingType = "rope.scaling.type"
        public static let ropeScalingFactor = "rope.scaling.factor"
        public static let ropeScalingOriginalContext = "rope.scaling.original_context_length"
        public static let vocabSize = "vocab_size"
        /// granite: llama.cpp's RoPE switch (false = no RoPE on any layer) and its multipliers.
        public static let ropeScalingFinetuned = "rope.scaling.finetuned"
        public static let embeddingScale = "embedding_scale"
        public static let residualScale = "residual_scale"
        public static let logitScale = "logit_scale"
        public static let attentionScale = "attention.scale"
        /// nopekit's own key: the per-layer position pattern (`none`, `every:4`, `layers:…`),
        /// which GGUF has no standard key for.
        public static let nopekitPosition = "nopekit.position"
        public static let tokens = "tokenizer.ggml.tokens"
    }
}

/// The type tag of a GGUF metadata value (gguf.md; gguf-py `GGUFValueType`).
public enum GGUFValueType: UInt32, CaseIterable, Sendable, CustomStringConvertible {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// Bytes of one value, or nil for strings and arrays.
    public var fixedSize: Int? {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        case .string, .array: return nil
        }
    }

    /// gguf-py's name, e.g. `UINT32`.
    public var description: String {
        switch self {
        case .uint8: return "UINT8"
        case .int8: return "INT8"
        case .uint16: return "UINT16"
        case .int16: return "INT16"
        case .uint32: return "UINT32"
        case .int32: return "INT32"
        case .float32: return "FLOAT32"
        case .bool: return "BOOL"
        case .string: return "STRING"
        case .array: return "ARRAY"
        case .uint64: return "UINT64"
        case .int64: return "INT64"
        case .float64: return "FLOAT64"
        }
    }
}
