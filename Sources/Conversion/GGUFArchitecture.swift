import Checkpoints

/// The llama.cpp architecture a Llama-family model is written as, chosen so that stock
/// llama.cpp runs it exactly (formats.md §3.6, verified against a real llama.cpp):
///
/// | layers | architecture | why |
/// |---|---|---|
/// | all RoPE | `llama` (`qwen2`/`qwen3` kept) | the plain graph |
/// | all NoPE | `granite`, `rope.scaling.finetuned = false`, `logit_scale = 1` | granite's RoPE switch |
/// | RoPE except every 4th | `smollm3` | llama.cpp hard-codes that step |
///
/// GGUF has no key for "this layer has no RoPE", and `llama` runs RoPE on every layer, so any
/// other pattern is refused rather than written as a model llama.cpp would run wrongly.
public struct GGUFArchitecture: Equatable, Sendable {
    public var name: String
    /// Keys that make llama.cpp's graph for `name` run this model.
    public var extraMetadata: [GGUFKeyValue]

    /// Whether llama.cpp's converter permutes Q/K rows for this architecture.
    public var permutesQK: Bool { QKPermutation.applies(toGGUFArchitecture: name) }

    public static func choose(for c: ModelConfig, source: String) throws -> GGUFArchitecture {
        func refuse(_ feature: String, _ advice: String) -> ConvertError {
            .unsupportedModel(source: source, feature: feature, advice: advice)
        }
        guard ["llama", "mistral", "smollm3", "qwen2", "qwen3"].contains(c.modelType) else {
            throw refuse("model type \(c.modelType)", "nopekit writes Llama-family blocks (llama, mistral, smollm3, qwen2, qwen3)")
        }
        if c.attentionWindows.contains(where: { $0 != nil }) {
            throw refuse("sliding-window attention", "llama.cpp's llama, granite and smollm3 graphs attend to the whole context")
        }
        let allRoPE = c.positions.allSatisfy { $0 == .rope }
        let allNoPE = c.positions.allSatisfy { $0 == .none }
        let smolLM3 = c.positions.count >= 4 && c.positions.indices.allSatisfy { (c.positions[$0] == .none) == (($0 + 1) % 4 == 0) }
        if !allNoPE {
            switch c.rope.scalingType {
            case nil, "default", "linear": break
            case "yarn":
                if (c.rope.betaFast ?? 32) != 32 || (c.rope.betaSlow ?? 1) != 1 || c.rope.attentionFactor != nil {
                    throw refuse("yarn with custom beta_fast/beta_slow/attention_factor", "nopekit's GGUF reader knows only the default yarn parameters")
                }
            case let t?:
                throw refuse("\(t) RoPE scaling", "llama.cpp stores it as a rope_freqs tensor or keys nopekit does not run yet")
            }
            if c.rope.partialRotaryFactor != 1 {
                throw refuse("partial rotary embedding (\(c.rope.partialRotaryFactor))", "llama.cpp's Q/K permutation assumes RoPE over the whole head")
            }
        }
        if allRoPE {
            if c.modelType == "qwen2" && c.attentionBias { return GGUFArchitecture(name: "qwen2", extraMetadata: []) }
            if c.modelType == "qwen3" && c.qkNorm { return GGUFArchitecture(name: "qwen3", extraMetadata: []) }
            if c.qkNorm { throw refuse("q/k norms in a \(c.modelType) model", "llama.cpp's llama graph has none") }
            return GGUFArchitecture(name: "llama", extraMetadata: [])
        }
        if c.qkNorm { throw refuse("q/k norms in a model with NoPE layers", "llama.cpp's granite and smollm3 graphs have none") }
        if allNoPE {
            return GGUFArchitecture(name: "granite", extraMetadata: [
                GGUFKeyValue(GGUF.Key.arch("granite", GGUF.Key.ropeScalingFinetuned), .bool(false)),
                GGUFKeyValue(GGUF.Key.arch("granite", GGUF.Key.logitScale), .float32(1)),
            ])
        }
        if smolLM3 { return GGUFArchitecture(name: "smollm3", extraMetadata: []) }
        throw ConvertError.positionPattern(source: source, pattern: PositionSpec.describe(c.positions))
    }
}
