import Foundation

/// The architecture of a Llama-family decoder, decoded from a Hugging Face `config.json`
/// (later also from GGUF metadata), with one position encoding per layer.
///
/// Decoded families: `llama` (and the Llama-shaped `mistral`, `qwen2`, `qwen3`), `smollm3`
/// (its `no_rope_layers`: 1 means the layer USES RoPE), `cohere2`-style `layer_types`
/// (`full_attention` layers are NoPE, sliding-window layers RoPE) and `llama4` (decoded so it
/// can be reported; its position-dependent attention temperature cannot be baked).
/// Missing optional fields take transformers' defaults (`LlamaConfig` 4.57).
public struct ModelConfig: Equatable, Sendable {
    public var modelType: String
    public var layers: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var hidden: Int
    public var intermediate: Int
    public var vocab: Int
    public var normEps: Double
    public var tiedEmbeddings: Bool
    /// q/k/v/o biases (`attention_bias`, or implied, as for qwen2's q/k/v).
    public var attentionBias: Bool
    public var mlpBias: Bool
    /// Per-head RMSNorm on q and k (qwen3, llama4 `use_qk_norm`).
    public var qkNorm: Bool
    /// `max_position_embeddings`: the length the model was trained at, as far as it says.
    public var maxPositionEmbeddings: Int?
    public var rope: RopeParameters
    /// One entry per layer.
    public var positions: [PositionEncoding]
    /// Where `positions` came from, in words (for `inspect`).
    public var positionSource: String
    /// A position-dependent attention temperature (Llama 4's `attn_temperature_tuning`).
    public var temperatureTuning: TemperatureTuning?
    /// `torch_dtype` / `dtype` as written.
    public var declaredDType: String?
    public var bosTokenID: Int?
    public var eosTokenIDs: [Int]
    /// Per layer, the sliding attention window (keys visible to a query, itself included), or
    /// nil for global attention. Empty means every layer is global.
    public var attentionWindows: [Int?] = []

    /// The sliding window of layer `l`, nil for global attention.
    public func window(layer l: Int) -> Int? { attentionWindows.indices.contains(l) ? attentionWindows[l] : nil }

    /// Why a per-head temperature cannot be baked into this model's weights, if so.
    public var notBakeableReason: String? {
        guard let t = temperatureTuning else { return nil }
        return "\(modelType) scales queries of NoPE layers by 1 + \(t.attnScale)·ln(1 + floor((pos+1)/\(t.floorScale))), a temperature that depends on the position; a constant per-head factor baked into W_q cannot express it"
    }

    public var isBakeable: Bool { notBakeableReason == nil }

    public var nopeLayerCount: Int { positions.filter { $0 == .none }.count }

    public init(modelType: String, layers: Int, heads: Int, kvHeads: Int, headDim: Int, hidden: Int, intermediate: Int,
                vocab: Int, normEps: Double, tiedEmbeddings: Bool, attentionBias: Bool, mlpBias: Bool, qkNorm: Bool,
                maxPositionEmbeddings: Int?, rope: RopeParameters, positions: [PositionEncoding], positionSource: String,
                temperatureTuning: TemperatureTuning?, declaredDType: String?, bosTokenID: Int?, eosTokenIDs: [Int]) {
        self.modelType = modelType
        self.layers = layers
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.hidden = hidden
        self.intermediate = intermediate
        self.vocab = vocab
        self.normEps = normEps
        self.tiedEmbeddings = tiedEmbeddings
        self.attentionBias = attentionBias
        self.mlpBias = mlpBias
        self.qkNorm = qkNorm
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.rope = rope
        self.positions = positions
        self.positionSource = positionSource
        self.temperatureTuning = temperatureTuning
        self.declaredDType = declaredDType
        self.bosTokenID = bosTokenID
        self.eosTokenIDs = eosTokenIDs
    }
}

/// RoPE settings: θ, optional scaling, partial rotary fraction.
public struct RopeParameters: Equatable, Sendable {
    public var theta: Double
    /// `rope_type` (legacy key `type`): nil or "default", "linear", "llama3", "yarn", "dynamic", "longrope".
    public var scalingType: String?
    public var factor: Double?
    public var lowFreqFactor: Double?
    public var highFreqFactor: Double?
    public var originalMaxPositionEmbeddings: Int?
    public var betaFast: Double?
    public var betaSlow: Double?
    public var attentionFactor: Double?
    /// Fraction of head_dim that is rotated (`partial_rotary_factor`, default 1).
    public var partialRotaryFactor: Double

    /// Dims of a head that are rotated: ⌊head_dim · partial_rotary_factor⌋, as transformers.
    public func rotaryDim(headDim: Int) -> Int { Int(Double(headDim) * partialRotaryFactor) }

    /// Refuses what the engine would run wrongly or unsafely: a rotated width outside
    /// 2…head_dim or odd (the rotation pairs dim i with i + rotary/2 inside the head), and the
    /// scaling types nopekit does not implement, when a layer uses RoPE.
    public func check(headDim: Int, ropeLayers: Bool, file: String) throws {
        let rotary = Double(headDim) * partialRotaryFactor
        guard partialRotaryFactor.isFinite, partialRotaryFactor > 0, partialRotaryFactor <= 1, Int(rotary) >= 2, Int(rotary) % 2 == 0 else {
            throw ModelConfigError.invalidValue(file: file, key: "partial_rotary_factor",
                                                detail: "\(partialRotaryFactor) × head_dim \(headDim) must give an even number of rotated dims in 2…\(headDim)")
        }
        if ropeLayers, let t = scalingType, ["dynamic", "longrope"].contains(t) {
            throw ModelConfigError.invalidValue(file: file, key: "rope_scaling",
                                                detail: "'\(t)' RoPE scaling is not implemented; nopekit refuses rather than run it wrongly (--position none if the model has no RoPE layers)")
        }
    }

    public init(theta: Double, scalingType: String? = nil, factor: Double? = nil, partialRotaryFactor: Double = 1) {
        self.theta = theta
        self.scalingType = scalingType
        self.factor = factor
        self.partialRotaryFactor = partialRotaryFactor
    }
}

/// Llama 4's query temperature on NoPE layers: `1 + attnScale·ln(1 + floor((pos+1)/floorScale))`.
public struct TemperatureTuning: Equatable, Sendable {
    public var floorScale: Double
    public var attnScale: Double
}

public enum ModelConfigError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, detail: String)
    case missingField(file: String, key: String)
    case invalidValue(file: String, key: String, detail: String)
    case unsupportedArchitecture(file: String, modelType: String)
    case noConfig(path: String)
    /// The config's numbers do not describe the tensors stored.
    case doesNotMatchWeights(source: String, detail: String)

    public static let supportedTypes = ["llama", "mistral", "qwen2", "qwen3", "smollm3", "cohere2", "llama4"]

    public var description: String {
        switch self {
        case .unreadable(let f, let d): return "\(f): cannot read model config: \(d)"
        case .missingField(let f, let k): return "\(f): missing required field '\(k)'"
        case .invalidValue(let f, let k, let d): return "\(f): field '\(k)': \(d)"
        case .unsupportedArchitecture(let f, let t):
            return "\(f): model_type '\(t)' is not supported (supported: \(Self.supportedTypes.joined(separator: ", "))); nopekit refuses rather than guess its layout"
        case .noConfig(let p): return "\(p): no config.json found beside the weights; it is needed for heads, KV heads and positions"
        case .doesNotMatchWeights(let s, let d): return "\(s): the config does not match the weights: \(d)"
        }
    }
}

extension ModelConfig {
    /// Reads and decodes `config.json` at `path`. `override` (the `--position` option) replaces
    /// whatever the file says about positions.
    public static func load(path: String, override: PositionSpec? = nil) throws -> ModelConfig {
        let bytes: [UInt8]
        do { bytes = try SmallFile.read(path) } catch {
            throw ModelConfigError.unreadable(file: path, detail: "\(error)")
        }
        let json: JSONValue
        do { json = try JSONReader.parse(bytes) } catch {
            throw ModelConfigError.unreadable(file: path, detail: "not valid JSON: \(error)")
        }
        return try decode(json, file: path, override: override)
    }

    /// Decodes a parsed `config.json`.
    public static func decode(_ root: JSONValue, file: String, override: PositionSpec? = nil) throws -> ModelConfig {
        guard case .object = root else { throw ModelConfigError.unreadable(file: file, detail: "top level is not an object") }
        guard let outerType = root["model_type"]?.stringValue else { throw ModelConfigError.missingField(file: file, key: "model_type") }
        // Llama 4 multimodal configs nest the language model under text_config.
        var json = root
        if outerType == "llama4", let text = root["text_config"], case .object = text { json = text }
        let modelType = outerType
        guard ModelConfigError.supportedTypes.contains(modelType) else {
            throw ModelConfigError.unsupportedArchitecture(file: file, modelType: modelType)
        }
        let r = FieldReader(json: json, file: file)

        let hidden = try r.positiveInt("hidden_size")
        let layers = try checkLayerCount(r.positiveInt("num_hidden_layers"), key: "num_hidden_layers", file: file)
        let heads = try r.positiveInt("num_attention_heads")
        let kvHeads = try r.optionalPositiveInt("num_key_value_heads") ?? heads
        guard heads % kvHeads == 0 else {
            throw ModelConfigError.invalidValue(file: file, key: "num_key_value_heads", detail: "\(kvHeads) does not divide num_attention_heads \(heads)")
        }
        let headDim = try r.optionalPositiveInt("head_dim") ?? {
            guard hidden % heads == 0 else {
                throw ModelConfigError.invalidValue(file: file, key: "head_dim", detail: "absent, and hidden_size \(hidden) is not divisible by num_attention_heads \(heads)")
            }
            return hidden / heads
        }()
        let intermediate = try r.optionalPositiveInt(modelType == "llama4" ? "intermediate_size_mlp" : "intermediate_size")
            ?? r.positiveInt("intermediate_size")
        let vocab = try r.positiveInt("vocab_size")
        let normEps = try r.optionalDouble("rms_norm_eps") ?? r.optionalDouble("layer_norm_eps") ?? 1e-6
        guard normEps.isFinite && normEps >= 0 else {
            throw ModelConfigError.invalidValue(file: file, key: "rms_norm_eps", detail: "\(normEps) is not a finite number ≥ 0")
        }
        // transformers' defaults: cohere2 and smollm3 tie their embeddings, llama does not.
        let tied = try r.optionalBool("tie_word_embeddings") ?? (modelType == "cohere2" || modelType == "smollm3")
        // Qwen2's q/k/v projections always have biases (transformers ignores attention_bias there).
        let attentionBias = try modelType == "qwen2" || (r.optionalBool("attention_bias") ?? false)
        let mlpBias = try r.optionalBool("mlp_bias") ?? false
        let qkNorm = try modelType == "qwen3" || (r.optionalBool("use_qk_norm") ?? false)

        let rope = try decodeRope(r, modelType: modelType)
        let (positions, source) = try decodePositions(r, modelType: modelType, layers: layers, override: override)
        try rope.check(headDim: headDim, ropeLayers: positions.contains(.rope), file: file)

        var tuning: TemperatureTuning? = nil
        if modelType == "llama4", try r.optionalBool("attn_temperature_tuning") ?? true {
            tuning = TemperatureTuning(floorScale: try r.optionalDouble("floor_scale") ?? 8192,
                                       attnScale: try r.optionalDouble("attn_scale") ?? 0.1)
        }

        var eos: [Int] = []
        if let e = root["eos_token_id"] ?? json["eos_token_id"] {
            if let i = e.intValue { eos = [i] } else if let a = e.arrayValue { eos = a.compactMap(\.intValue) }
        }
        var config = ModelConfig(
            modelType: modelType, layers: layers, heads: heads, kvHeads: kvHeads, headDim: headDim,
            hidden: hidden, intermediate: intermediate, vocab: vocab, normEps: normEps,
            tiedEmbeddings: tied, attentionBias: attentionBias, mlpBias: mlpBias, qkNorm: qkNorm,
            maxPositionEmbeddings: try r.optionalPositiveInt("max_position_embeddings"),
            rope: rope, positions: positions, positionSource: source, temperatureTuning: tuning,
            declaredDType: (root["torch_dtype"] ?? root["dtype"] ?? json["torch_dtype"])?.stringValue,
            bosTokenID: (root["bos_token_id"] ?? json["bos_token_id"])?.intValue, eosTokenIDs: eos)
        config.attentionWindows = try decodeWindows(r, modelType: modelType, layers: layers)
        return config
    }

    /// Sliding windows as transformers assigns them: `layer_types` ("sliding_attention") where
    /// given; Mistral's `sliding_window` on every layer; Qwen 2/3 and SmolLM3's
    /// `use_sliding_window` on the layers from `max_window_layers` on; Cohere 2's RoPE layers.
    static func decodeWindows(_ r: FieldReader, modelType: String, layers: Int) throws -> [Int?] {
        let window = try r.optionalPositiveInt("sliding_window") ?? (modelType == "cohere2" ? 4096 : nil)  // Cohere2Config's default
        // SmolLM3 applies its `layer_types` windows only under `use_sliding_window`.
        if modelType == "smollm3", try r.optionalBool("use_sliding_window") != true { return [] }
        if let types = r.json["layer_types"]?.arrayValue {
            let names = types.compactMap(\.stringValue)
            guard names.count == layers else {
                throw ModelConfigError.invalidValue(file: r.file, key: "layer_types", detail: "must name a type for each of the \(layers) layers")
            }
            guard !names.contains("sliding_attention") || window != nil else {
                throw ModelConfigError.invalidValue(file: r.file, key: "sliding_window", detail: "layer_types has sliding_attention layers but no sliding_window size")
            }
            return names.map { $0 == "sliding_attention" ? window : nil }
        }
        guard let window else { return [] }
        switch modelType {
        case "mistral":
            return Array(repeating: window, count: layers)
        case "qwen2", "qwen3", "smollm3":
            guard try r.optionalBool("use_sliding_window") == true else { return [] }
            let first = max(0, r.json["max_window_layers"]?.intValue ?? 0)
            return (0..<layers).map { $0 >= first ? window : nil }
        case "cohere2":
            let pattern = try r.optionalPositiveInt("sliding_window_pattern") ?? 4
            return (0..<layers).map { ($0 + 1) % pattern == 0 ? nil : window }
        default:
            return []
        }
    }

    static func decodeRope(_ r: FieldReader, modelType: String) throws -> RopeParameters {
        // transformers v5 moves θ and scaling into `rope_parameters`; 4.x has them top level.
        let params = r.json["rope_parameters"]
        let scaling = r.json["rope_scaling"].flatMap { $0.isNull ? nil : $0 } ?? params
        let defaultTheta: Double = modelType == "llama4" ? 500_000 : modelType == "smollm3" ? 2_000_000 : 10_000
        let theta = try r.optionalDouble("rope_theta") ?? params?["rope_theta"]?.doubleValue ?? defaultTheta
        // transformers v5 writes partial_rotary_factor inside rope_parameters only.
        let partial = try r.optionalDouble("partial_rotary_factor") ?? params?["partial_rotary_factor"]?.doubleValue ?? 1
        var rope = RopeParameters(theta: theta, partialRotaryFactor: partial)
        guard theta > 0 else { throw ModelConfigError.invalidValue(file: r.file, key: "rope_theta", detail: "must be positive") }
        if let s = scaling, case .object = s {
            let type = s["rope_type"]?.stringValue ?? s["type"]?.stringValue
            let known = ["default", "linear", "llama3", "yarn", "dynamic", "longrope"]
            if let type, !known.contains(type) {
                throw ModelConfigError.invalidValue(file: r.file, key: "rope_scaling.rope_type", detail: "unknown type '\(type)' (known: \(known.joined(separator: ", ")))")
            }
            rope.scalingType = type
            rope.factor = s["factor"]?.doubleValue
            rope.lowFreqFactor = s["low_freq_factor"]?.doubleValue
            rope.highFreqFactor = s["high_freq_factor"]?.doubleValue
            rope.originalMaxPositionEmbeddings = s["original_max_position_embeddings"]?.intValue
            rope.betaFast = s["beta_fast"]?.doubleValue
            rope.betaSlow = s["beta_slow"]?.doubleValue
            rope.attentionFactor = s["attention_factor"]?.doubleValue
            if let type, ["linear", "llama3", "yarn", "dynamic"].contains(type), rope.factor == nil {
                throw ModelConfigError.invalidValue(file: r.file, key: "rope_scaling", detail: "rope_type '\(type)' needs 'factor'")
            }
        }
        return rope
    }

    static func decodePositions(_ r: FieldReader, modelType: String, layers: Int,
                                override: PositionSpec?) throws -> ([PositionEncoding], String) {
        if let override {
            return (try override.resolve(layerCount: layers), "--position \(override)")
        }
        // Our own field, written by `nopekit pretrain` and by patched outputs.
        if let value = r.json["nopekit_position"], !value.isNull {
            // anything but a pattern string is an error: ignoring it would run RoPE on a NoPE model
            guard let text = value.stringValue else {
                throw ModelConfigError.invalidValue(file: r.file, key: "nopekit_position", detail: "must be a pattern string such as \"none\" or \"every:4\"")
            }
            do {
                return (try PositionSpec(parsing: text).resolve(layerCount: layers), "config.json nopekit_position \"\(text)\"")
            } catch {
                throw ModelConfigError.invalidValue(file: r.file, key: "nopekit_position", detail: "\(error)")
            }
        }
        if modelType == "smollm3" || modelType == "llama4" {
            // no_rope_layers[i] == 1 means layer i USES RoPE (the name says the opposite).
            if let list = r.json["no_rope_layers"]?.arrayValue {
                guard list.count == layers, list.allSatisfy({ $0.intValue == 0 || $0.intValue == 1 || $0.boolValue != nil }) else {
                    throw ModelConfigError.invalidValue(file: r.file, key: "no_rope_layers", detail: "must list 0 or 1 for each of the \(layers) layers (1 = the layer uses RoPE)")
                }
                let positions: [PositionEncoding] = list.map { ($0.intValue ?? ($0.boolValue == true ? 1 : 0)) == 1 ? .rope : .none }
                return (positions, "config.json no_rope_layers (1 = RoPE)")
            }
            let interval = try r.optionalPositiveInt("no_rope_layer_interval") ?? 4
            return (try PositionSpec(pattern: .everyNth(interval)).resolve(layerCount: layers),
                    "\(modelType) default: every \(interval)th layer NoPE")
        }
        if modelType == "cohere2" {
            if let types = r.json["layer_types"]?.arrayValue {
                let names = types.compactMap(\.stringValue)
                guard names.count == layers else {
                    throw ModelConfigError.invalidValue(file: r.file, key: "layer_types", detail: "must name a type for each of the \(layers) layers")
                }
                return (names.map { $0 == "full_attention" ? .none : .rope }, "config.json layer_types (full_attention = NoPE)")
            }
            let pattern = try r.optionalPositiveInt("sliding_window_pattern") ?? 4
            return (try PositionSpec(pattern: .everyNth(pattern)).resolve(layerCount: layers),
                    "cohere2 sliding_window_pattern \(pattern): every \(pattern)th layer global NoPE")
        }
        return (Array(repeating: .rope, count: layers),
                "\(modelType) default: RoPE on every layer; a NoPE checkpoint with a plain config needs --position")
    }
}

/// Typed access to config fields with errors that name the key.
struct FieldReader {
    let json: JSONValue
    let file: String

    func positiveInt(_ key: String) throws -> Int {
        guard let v = try optionalPositiveInt(key) else { throw ModelConfigError.missingField(file: file, key: key) }
        return v
    }

    func optionalPositiveInt(_ key: String) throws -> Int? {
        guard let v = json[key], !v.isNull else { return nil }
        guard let i = v.intValue, i > 0 else {
            throw ModelConfigError.invalidValue(file: file, key: key, detail: "expected a positive integer")
        }
        return i
    }

    func optionalDouble(_ key: String) throws -> Double? {
        guard let v = json[key], !v.isNull else { return nil }
        guard let d = v.doubleValue else { throw ModelConfigError.invalidValue(file: file, key: key, detail: "expected a number") }
        return d
    }

    func optionalBool(_ key: String) throws -> Bool? {
        guard let v = json[key], !v.isNull else { return nil }
        guard let b = v.boolValue else { throw ModelConfigError.invalidValue(file: file, key: key, detail: "expected true or false") }
        return b
    }
}
