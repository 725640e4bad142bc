import Testing
@testable import Checkpoints

@Suite struct PositionSpecTests {
    @Test func parsesEveryForm() throws {
        #expect(try PositionSpec(parsing: "none").resolve(layerCount: 3) == [.none, .none, .none])
        #expect(try PositionSpec(parsing: "rope").resolve(layerCount: 2) == [.rope, .rope])
        #expect(try PositionSpec(parsing: "every:4").resolve(layerCount: 8) == [.rope, .rope, .rope, .none, .rope, .rope, .rope, .none])
        #expect(try PositionSpec(parsing: "layers:0,2").resolve(layerCount: 4) == [.none, .rope, .none, .rope])
    }

    @Test(arguments: ["", "nopes", "every:0", "every:x", "layers:", "layers:1,,2", "layers:-1"])
    func rejectsMalformed(_ text: String) {
        #expect(throws: PositionSpecError.self) { try PositionSpec(parsing: text) }
    }

    @Test func rejectsLayersBeyondTheModel() throws {
        #expect(throws: PositionSpecError.layerOutOfRange(layer: 5, layerCount: 4)) {
            try PositionSpec(parsing: "layers:1,5").resolve(layerCount: 4)
        }
    }

    @Test func describesPatternsCompactly() {
        #expect(PositionSpec.describe([.none, .none]) == "none")
        #expect(PositionSpec.describe([.rope, .rope, .rope, .none, .rope, .rope, .rope, .none]) == "every:4")
        #expect(PositionSpec.describe([.none, .rope, .rope]) == "layers:0")
    }
}

@Suite struct ModelConfigTests {
    static let llama = #"""
    {"model_type": "llama", "hidden_size": 2048, "num_hidden_layers": 22, "num_attention_heads": 32,
     "num_key_value_heads": 4, "intermediate_size": 5632, "vocab_size": 32000, "rms_norm_eps": 1e-05,
     "max_position_embeddings": 2048, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
     "rope_theta": 10000.0, "bos_token_id": 1, "eos_token_id": 2}
    """#

    func decode(_ text: String, override: PositionSpec? = nil) throws -> ModelConfig {
        try ModelConfig.decode(try JSONReader.parse(text), file: "config.json", override: override)
    }

    @Test func decodesTinyLlama() throws {
        let c = try decode(Self.llama)
        #expect(c.layers == 22 && c.heads == 32 && c.kvHeads == 4 && c.headDim == 64)
        #expect(c.hidden == 2048 && c.intermediate == 5632 && c.vocab == 32000)
        #expect(c.normEps == 1e-5 && !c.tiedEmbeddings && !c.attentionBias && !c.qkNorm)
        #expect(c.maxPositionEmbeddings == 2048 && c.declaredDType == "bfloat16")
        #expect(c.positions == Array(repeating: .rope, count: 22))
        #expect(c.isBakeable && c.bosTokenID == 1 && c.eosTokenIDs == [2])
    }

    @Test func plainLlamaConfigTakesAPositionOverride() throws {
        // TinyLlama-NoPE-1.1B ships a plain Llama config: the user says it is NoPE.
        let c = try decode(Self.llama, override: try PositionSpec(parsing: "none"))
        #expect(c.nopeLayerCount == 22)
        #expect(c.positionSource.contains("--position none"))
    }

    @Test func nopekitPositionFieldIsTrusted() throws {
        let text = Self.llama.replacingOccurrences(of: "\"rope_theta\"", with: "\"nopekit_position\": \"layers:0,21\", \"rope_theta\"")
        let c = try decode(text)
        #expect(c.positions[0] == .none && c.positions[21] == .none && c.nopeLayerCount == 2)
    }

    @Test func smolLM3NoRopeLayersMeansUsesRope() throws {
        let text = #"""
        {"model_type": "smollm3", "hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
         "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 100, "no_rope_layers": [1, 1, 1, 0]}
        """#
        let c = try decode(text)
        #expect(c.positions == [.rope, .rope, .rope, .none])
        #expect(c.rope.theta == 2_000_000)
        let defaulted = try decode(text.replacingOccurrences(of: #", "no_rope_layers": [1, 1, 1, 0]"#, with: ""))
        #expect(defaulted.positions == [.rope, .rope, .rope, .none])
    }

    @Test func smolLM3RejectsAWrongLengthList() throws {
        let text = #"""
        {"model_type": "smollm3", "hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
         "intermediate_size": 128, "vocab_size": 100, "no_rope_layers": [1, 0]}
        """#
        #expect(throws: ModelConfigError.self) { try decode(text) }
    }

    @Test func cohere2LayerTypes() throws {
        let text = #"""
        {"model_type": "cohere2", "hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
         "intermediate_size": 128, "vocab_size": 100, "layer_norm_eps": 1e-5,
         "layer_types": ["sliding_attention", "sliding_attention", "sliding_attention", "full_attention"]}
        """#
        let c = try decode(text)
        #expect(c.positions == [.rope, .rope, .rope, .none])
        #expect(c.tiedEmbeddings)
        #expect(c.attentionWindows == [4096, 4096, 4096, nil])  // Cohere2Config's default window
    }

    /// Sliding windows as transformers assigns them per family.
    @Test func slidingWindows() throws {
        let base = #""hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 100"#
        #expect(try decode(#"{"model_type": "mistral", \#(base), "sliding_window": 16}"#).attentionWindows == [16, 16, 16, 16])
        #expect(try decode(#"{"model_type": "mistral", \#(base), "sliding_window": null}"#).attentionWindows == [])
        #expect(try decode(#"{"model_type": "qwen2", \#(base), "sliding_window": 16, "use_sliding_window": false}"#).attentionWindows == [])
        #expect(try decode(#"{"model_type": "qwen2", \#(base), "sliding_window": 16, "use_sliding_window": true, "max_window_layers": 2}"#)
                .attentionWindows == [nil, nil, 16, 16])
        let typed = try decode(#"{"model_type": "llama", \#(base), "sliding_window": 8, "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"]}"#)
        #expect(typed.attentionWindows == [8, nil, 8, nil] && typed.window(layer: 1) == nil && typed.window(layer: 2) == 8)
        #expect(throws: ModelConfigError.self) {
            try decode(#"{"model_type": "llama", \#(base), "layer_types": ["sliding_attention", "full_attention", "full_attention", "full_attention"]}"#)
        }
        // SmolLM3 (transformers' SmolLM3Attention) windows its sliding_attention layers only
        // under use_sliding_window.
        let types = #""sliding_window": 8, "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"]"#
        #expect(try decode(#"{"model_type": "smollm3", \#(base), \#(types), "use_sliding_window": true}"#).attentionWindows == [8, nil, 8, nil])
        #expect(try decode(#"{"model_type": "smollm3", \#(base), \#(types), "use_sliding_window": false}"#).attentionWindows == [])
    }

    @Test func llama4TemperatureIsReportedAsNotBakeable() throws {
        let text = #"""
        {"model_type": "llama4", "text_config": {"model_type": "llama4_text", "hidden_size": 64,
         "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
         "intermediate_size": 256, "intermediate_size_mlp": 128, "vocab_size": 100,
         "no_rope_layers": [1, 1, 1, 0], "attn_temperature_tuning": true, "floor_scale": 8192, "attn_scale": 0.1,
         "use_qk_norm": true}}
        """#
        let c = try decode(text)
        #expect(!c.isBakeable)
        #expect(c.notBakeableReason?.contains("depends on the position") == true)
        #expect(c.intermediate == 128 && c.qkNorm && c.positions == [.rope, .rope, .rope, .none])
    }

    @Test func qwenFamiliesImplyBiasesAndNorms() throws {
        let base = #"{"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 100, "model_type": "#
        #expect(try decode(base + #""qwen2"}"#).attentionBias)
        #expect(try decode(base + #""qwen3"}"#).qkNorm)
    }

    @Test func ropeScalingIsDecodedAndChecked() throws {
        let scaled = Self.llama.replacingOccurrences(of: "\"rope_theta\": 10000.0", with: #""rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}"#)
        let c = try decode(scaled)
        #expect(c.rope.scalingType == "llama3" && c.rope.factor == 8 && c.rope.originalMaxPositionEmbeddings == 8192 && c.rope.theta == 500000)
        let unknown = Self.llama.replacingOccurrences(of: "\"rope_theta\": 10000.0", with: #""rope_scaling": {"rope_type": "wobbly", "factor": 2}"#)
        #expect(throws: ModelConfigError.self) { try decode(unknown) }
        let v5 = Self.llama.replacingOccurrences(of: "\"rope_theta\": 10000.0", with: #""rope_parameters": {"rope_theta": 1234.0, "rope_type": "default"}"#)
        #expect(try decode(v5).rope.theta == 1234)
    }

    @Test func errorsNameTheField() throws {
        #expect(throws: ModelConfigError.missingField(file: "config.json", key: "hidden_size")) {
            try decode(#"{"model_type": "llama"}"#)
        }
        #expect(throws: ModelConfigError.unsupportedArchitecture(file: "config.json", modelType: "gpt2")) {
            try decode(#"{"model_type": "gpt2"}"#)
        }
        let badGQA = Self.llama.replacingOccurrences(of: "\"num_key_value_heads\": 4", with: "\"num_key_value_heads\": 5")
        #expect(throws: ModelConfigError.self) { try decode(badGQA) }
        // A negative epsilon made every RMSNorm NaN and crashed `score` (issue 13).
        let negativeEps = Self.llama.replacingOccurrences(of: "\"rms_norm_eps\": 1e-05", with: "\"rms_norm_eps\": -1e-05")
        #expect(negativeEps != Self.llama)
        #expect(throws: ModelConfigError.invalidValue(file: "config.json", key: "rms_norm_eps", detail: "-1e-05 is not a finite number ≥ 0")) {
            try decode(negativeEps)
        }
        // partial_rotary_factor outside (0, 1] made Rope trap or write past the head (issue 13).
        for bad in ["-0.5", "0", "1.5", "0.03125"] {   // 0.03125 × 64 = 2 is fine; see below
            let text = Self.llama.replacingOccurrences(of: "\"rms_norm_eps\"", with: "\"partial_rotary_factor\": \(bad), \"rms_norm_eps\"")
            if bad == "0.03125" { #expect(try decode(text).rope.rotaryDim(headDim: 64) == 2); continue }
            #expect(throws: ModelConfigError.self, "partial_rotary_factor \(bad)") { try decode(text) }
        }
        let odd = Self.llama.replacingOccurrences(of: "\"rms_norm_eps\"", with: "\"partial_rotary_factor\": 0.046875, \"rms_norm_eps\"")
        #expect(throws: ModelConfigError.self, "3 rotated dims") { try decode(odd) }
        // "nopekit_position": 5 was ignored, so RoPE ran on a NoPE model.
        let numeric = Self.llama.replacingOccurrences(of: "\"rms_norm_eps\"", with: "\"nopekit_position\": 5, \"rms_norm_eps\"")
        #expect(throws: ModelConfigError.invalidValue(file: "config.json", key: "nopekit_position", detail: "must be a pattern string such as \"none\" or \"every:4\"")) {
            try decode(numeric)
        }
        // Scaling types that are not implemented are refused where RoPE runs, accepted where it does not.
        let dynamic = Self.llama.replacingOccurrences(of: "\"rms_norm_eps\"", with: "\"rope_scaling\": {\"rope_type\": \"dynamic\", \"factor\": 2.0}, \"rms_norm_eps\"")
        #expect(throws: ModelConfigError.self) { try decode(dynamic) }
        #expect(try decode(dynamic, override: PositionSpec(parsing: "none")).positions.allSatisfy { $0 == .none })
        let floatLayers = Self.llama.replacingOccurrences(of: "\"num_hidden_layers\": 22", with: "\"num_hidden_layers\": 22.5")
        #expect(throws: ModelConfigError.invalidValue(file: "config.json", key: "num_hidden_layers", detail: "expected a positive integer")) {
            try decode(floatLayers)
        }
    }

    /// Found by FuzzConfig: 3·10^15 layers with `layer_types` made decoding allocate per-layer
    /// settings for every one of them (27 PB) before any tensor was looked at.
    @Test func layerCountIsBoundedBeforePerLayerSettingsAreAllocated() throws {
        let huge = Self.llama.replacingOccurrences(of: "\"num_hidden_layers\": 22", with: "\"num_hidden_layers\": 3333333333333334")
        let detail = "3333333333333334 layers; at most \(ModelConfig.layerLimit) are supported"
        #expect(throws: ModelConfigError.invalidValue(file: "config.json", key: "num_hidden_layers", detail: detail)) { try decode(huge) }
        let typed = huge.replacingOccurrences(of: "\"rms_norm_eps\"", with: "\"layer_types\": [\"full_attention\"], \"rms_norm_eps\"")
        #expect(throws: ModelConfigError.invalidValue(file: "config.json", key: "num_hidden_layers", detail: detail)) { try decode(typed) }
        #expect(try decode(Self.llama.replacingOccurrences(of: "\"num_hidden_layers\": 22", with: "\"num_hidden_layers\": \(ModelConfig.layerLimit)")).layers == ModelConfig.layerLimit)
        var gguf = GGUFConfigTests.metadata(headCount: .uint32(4))
        gguf[1] = GGUFKeyValue("llama.block_count", .uint64(3_333_333_333_333_334))
        #expect(throws: ModelConfigError.invalidValue(file: "m.gguf", key: "llama.block_count", detail: detail)) {
            try ModelConfig.decode(gguf: gguf, tensors: [], file: "m.gguf")
        }
    }
}

/// GGUF metadata decoding: the checks of the scalar keys hold for per-layer arrays too.
@Suite struct GGUFConfigTests {
    static func metadata(headCount: GGUFValue, ropeDims: UInt32 = 16) -> [GGUFKeyValue] {
        [GGUFKeyValue("general.architecture", .string("llama")), GGUFKeyValue("llama.block_count", .uint32(2)),
         GGUFKeyValue("llama.embedding_length", .uint32(64)), GGUFKeyValue("llama.feed_forward_length", .uint32(128)),
         GGUFKeyValue("llama.attention.head_count", headCount), GGUFKeyValue("llama.attention.head_count_kv", .uint32(2)),
         GGUFKeyValue("llama.vocab_size", .uint32(32)), GGUFKeyValue("llama.rope.dimension_count", .uint32(ropeDims))]
    }

    @Test func uniformArraysDecode() throws {
        let c = try ModelConfig.decode(gguf: Self.metadata(headCount: .array(.uint32, [.uint32(4), .uint32(4)])), tensors: [], file: "m.gguf")
        #expect(c.heads == 4 && c.headDim == 16 && c.rope.rotaryDim(headDim: 16) == 16)
    }

    /// A zero in a per-layer head count skipped the `> 0` check and divided by zero (issue 13).
    @Test func zeroInAPerLayerArrayIsRefused() {
        #expect(throws: ModelConfigError.invalidValue(file: "m.gguf", key: "llama.attention.head_count", detail: "expected positive integers per layer")) {
            try ModelConfig.decode(gguf: Self.metadata(headCount: .array(.uint32, [.uint32(0), .uint32(0)])), tensors: [], file: "m.gguf")
        }
    }

    /// rope.dimension_count beyond head_dim made Rope.apply write past the head (issue 13).
    @Test(arguments: [UInt32(17), 32, 3]) func ropeDimensionsOutsideTheHeadAreRefused(_ dims: UInt32) {
        #expect(throws: ModelConfigError.self) {
            try ModelConfig.decode(gguf: Self.metadata(headCount: .uint32(4), ropeDims: dims), tensors: [], file: "m.gguf")
        }
    }

    /// granite as nopekit writes NoPE models for llama.cpp (RoPE switched off, neutral
    /// multipliers) is a Llama block with every layer NoPE; a real Granite model's multipliers
    /// are refused by name rather than run wrongly (issue 13).
    @Test func graniteDecodesOnlyWithNeutralMultipliers() throws {
        func granite(_ extra: [GGUFKeyValue]) -> [GGUFKeyValue] {
            Self.metadata(headCount: .uint32(4)).map { kv in
                var kv = kv
                kv.key = kv.key.replacingOccurrences(of: "llama.", with: "granite.")
                if kv.key == "general.architecture" { kv.value = .string("granite") }
                return kv
            } + extra
        }
        let nope = try ModelConfig.decode(gguf: granite([GGUFKeyValue("granite.rope.scaling.finetuned", .bool(false)),
                                                         GGUFKeyValue("granite.logit_scale", .float32(1))]), tensors: [], file: "m.gguf")
        #expect(nope.positions == [.none, .none])
        let rope = try ModelConfig.decode(gguf: granite([]), tensors: [], file: "m.gguf")
        #expect(rope.positions == [.rope, .rope])
        #expect(throws: ModelConfigError.self) {
            try ModelConfig.decode(gguf: granite([GGUFKeyValue("granite.embedding_scale", .float32(12))]), tensors: [], file: "m.gguf")
        }
        #expect(throws: ModelConfigError.self) {
            try ModelConfig.decode(gguf: granite([GGUFKeyValue("granite.attention.scale", .float32(0.0078125))]), tensors: [], file: "m.gguf")
        }
    }
}
