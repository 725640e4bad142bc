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
        let floatLayers = Self.llama.replacingOccurrences(of: "\"num_hidden_layers\": 22", with: "\"num_hidden_layers\": 22.5")
        #expect(throws: ModelConfigError.invalidValue(file: "config.json", key: "num_hidden_layers", detail: "expected a positive integer")) {
            try decode(floatLayers)
        }
    }
}
