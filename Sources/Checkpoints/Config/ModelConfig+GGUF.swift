/// `ModelConfig` from GGUF metadata, with llama.cpp's conventions (formats.md §3): keys are
/// `{arch}.…`; the vocabulary size is the length of `tokenizer.ggml.tokens` when present;
/// tied embeddings mean there is no `output.weight`; biases and q/k norms are seen in the
/// tensor list. GGUF has no key for NoPE layers: `smollm3` and `llama4` hard-code every 4th
/// layer (llama.cpp `n_no_rope_layer_step`), `llama` always applies RoPE, and nopekit's own
/// `nopekit.position` key (for files nopekit writes) overrides both.
extension ModelConfig {
    public static let ggufArchitectures = ["llama", "smollm3", "llama4", "granite", "qwen2", "qwen3", "mistral"]

    public static func decode(gguf metadata: [GGUFKeyValue], tensors: [TensorInfo], file: String,
                              override: PositionSpec? = nil) throws -> ModelConfig {
        guard let arch = metadata[GGUF.Key.architecture]?.stringValue else {
            throw ModelConfigError.missingField(file: file, key: GGUF.Key.architecture)
        }
        guard ggufArchitectures.contains(arch) else {
            throw ModelConfigError.unsupportedArchitecture(file: file, modelType: arch)
        }
        func key(_ suffix: String) -> String { GGUF.Key.arch(arch, suffix) }
        func int(_ suffix: String) throws -> Int? {
            guard let v = metadata[key(suffix)] else { return nil }
            // Per-layer arrays (head counts, FFN widths) must be uniform for a Llama-family block.
            if let items = v.arrayValue {
                let values = items.compactMap(\.intValue)
                guard values.count == items.count, values.allSatisfy({ $0 > 0 }), let first = values.first else {
                    throw ModelConfigError.invalidValue(file: file, key: key(suffix), detail: "expected positive integers per layer")
                }
                guard values.allSatisfy({ $0 == first }) else {
                    throw ModelConfigError.invalidValue(file: file, key: key(suffix), detail: "per-layer values differ; nopekit supports uniform layers only")
                }
                return first
            }
            guard let i = v.intValue, i > 0 else {
                throw ModelConfigError.invalidValue(file: file, key: key(suffix), detail: "expected a positive integer")
            }
            return i
        }
        func required(_ suffix: String) throws -> Int {
            guard let v = try int(suffix) else { throw ModelConfigError.missingField(file: file, key: key(suffix)) }
            return v
        }
        let names = Set(tensors.map(\.name))
        let layers = try checkLayerCount(required(GGUF.Key.blockCount), key: key(GGUF.Key.blockCount), file: file)
        let hidden = try required(GGUF.Key.embeddingLength)
        let heads = try required(GGUF.Key.headCount)
        let kvHeads = try int(GGUF.Key.headCountKV) ?? heads
        guard heads % kvHeads == 0 else {
            throw ModelConfigError.invalidValue(file: file, key: key(GGUF.Key.headCountKV), detail: "\(kvHeads) does not divide head_count \(heads)")
        }
        let headDim = try int(GGUF.Key.keyLength) ?? hidden / heads
        let tokenCount = metadata[GGUF.Key.tokens]?.arrayValue?.count
        let embedRows = tensors.first { $0.name == "token_embd.weight" }?.shape.first
        guard let vocab = try tokenCount ?? int(GGUF.Key.vocabSize) ?? embedRows else {
            throw ModelConfigError.missingField(file: file, key: GGUF.Key.tokens)
        }
        var rope = RopeParameters(theta: metadata[key(GGUF.Key.ropeFreqBase)]?.doubleValue ?? (arch == "llama4" ? 500_000 : 10_000),
                                  partialRotaryFactor: 1)
        if let dims = try int(GGUF.Key.ropeDimensionCount), dims != headDim {
            rope.partialRotaryFactor = Double(dims) / Double(headDim)
        }
        if let type = metadata[key(GGUF.Key.ropeScalingType)]?.stringValue, type != "none" {
            rope.scalingType = type
            rope.factor = metadata[key(GGUF.Key.ropeScalingFactor)]?.doubleValue
            rope.originalMaxPositionEmbeddings = try int(GGUF.Key.ropeScalingOriginalContext)
        }

        let positions: [PositionEncoding]
        let source: String
        if let override {
            positions = try override.resolve(layerCount: layers)
            source = "--position \(override)"
        } else if let text = metadata[GGUF.Key.nopekitPosition]?.stringValue {
            do { positions = try PositionSpec(parsing: text).resolve(layerCount: layers) } catch {
                throw ModelConfigError.invalidValue(file: file, key: GGUF.Key.nopekitPosition, detail: "\(error)")
            }
            source = "GGUF \(GGUF.Key.nopekitPosition) \"\(text)\""
        } else if arch == "smollm3" || (arch == "llama4" && metadata[key("attention.sliding_window")]?.intValue != 0) {
            positions = try PositionSpec(pattern: .everyNth(4)).resolve(layerCount: layers)
            source = "\(arch) in llama.cpp: every 4th layer NoPE (n_no_rope_layer_step)"
        } else if arch == "granite", metadata[key(GGUF.Key.ropeScalingFinetuned)]?.boolValue == false {
            // llama.cpp's granite graph uses rope.scaling.finetuned as its RoPE switch.
            positions = Array(repeating: .none, count: layers)
            source = "granite \(key(GGUF.Key.ropeScalingFinetuned)) = false: RoPE off in llama.cpp"
        } else {
            positions = Array(repeating: .rope, count: layers)
            source = "\(arch) default: RoPE on every layer; a NoPE checkpoint needs --position"
        }
        if arch == "granite" { try checkGraniteMultipliers(metadata, arch: arch, headDim: headDim, file: file) }
        let tuning: TemperatureTuning? = arch == "llama4" ? TemperatureTuning(floorScale: 8192, attnScale: 0.1) : nil
        let eps = metadata[key(GGUF.Key.rmsEpsilon)]?.doubleValue ?? 1e-5
        guard eps.isFinite && eps >= 0 else {
            throw ModelConfigError.invalidValue(file: file, key: key(GGUF.Key.rmsEpsilon), detail: "\(eps) is not a finite number ≥ 0")
        }
        try rope.check(headDim: headDim, ropeLayers: positions.contains(.rope), file: file)
        return ModelConfig(
            modelType: arch, layers: layers, heads: heads, kvHeads: kvHeads, headDim: headDim, hidden: hidden,
            intermediate: try required(GGUF.Key.feedForwardLength), vocab: vocab, normEps: eps,
            tiedEmbeddings: !names.contains("output.weight"),
            attentionBias: names.contains("blk.0.attn_q.bias"), mlpBias: names.contains("blk.0.ffn_up.bias"),
            qkNorm: names.contains("blk.0.attn_q_norm.weight"),
            maxPositionEmbeddings: try int(GGUF.Key.contextLength), rope: rope, positions: positions,
            positionSource: source, temperatureTuning: tuning, declaredDType: nil,
            bosTokenID: metadata["tokenizer.ggml.bos_token_id"]?.intValue,
            eosTokenIDs: metadata["tokenizer.ggml.eos_token_id"]?.intValue.map { [$0] } ?? [])
    }

    /// granite blocks scale the embedding, residuals, attention and logits; a file whose
    /// multipliers are neutral (absent, 1, or 1/√head_dim for attention, as nopekit writes
    /// NoPE models for llama.cpp) is a Llama block. Anything else is a real Granite model,
    /// which nopekit does not implement: refused rather than run wrongly.
    static func checkGraniteMultipliers(_ metadata: [GGUFKeyValue], arch: String, headDim: Int, file: String) throws {
        let neutral: [(String, [Double])] = [
            (GGUF.Key.embeddingScale, [1]), (GGUF.Key.residualScale, [1]), (GGUF.Key.logitScale, [1]),
            (GGUF.Key.attentionScale, [0, 1 / Double(headDim).squareRoot()]),
        ]
        for (suffix, allowed) in neutral {
            let k = GGUF.Key.arch(arch, suffix)
            guard let v = metadata[k]?.doubleValue else { continue }
            guard allowed.contains(where: { abs(v - $0) <= 1e-6 * max(1, abs($0)) }) else {
                throw ModelConfigError.invalidValue(file: file, key: k, detail: "\(v): a granite multiplier; nopekit runs granite files only with neutral multipliers (its NoPE export), not Granite models")
            }
        }
    }
}
