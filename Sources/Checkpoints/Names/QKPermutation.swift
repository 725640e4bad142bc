/// llama.cpp's Q/K row permutation (formats.md §3.3).
///
/// Hugging Face Llama rotates pairs (i, i + hd/2) of each head ("rotate_half"); ggml's NORM
/// RoPE rotates adjacent pairs (2i, 2i+1). llama.cpp's converter therefore reorders the rows of
/// `q_proj` and `k_proj` (weights and biases) within each head:
///
///     gguf_row[h·hd + 2i + j] = hf_row[h·hd + j·hd/2 + i]     i ∈ [0, hd/2), j ∈ {0, 1}
///
/// Rows never leave their head, so a per-head scale touches the same set of rows either way.
public enum QKPermutation {
    /// GGUF architectures whose converter permutes Q/K: the Llama converter and its subclasses.
    /// qwen2/qwen3 use NEOX RoPE in llama.cpp (rotate_half, like HF) and are stored unpermuted;
    /// granite NoPE files (formats.md §3.6) are written unpermuted too.
    public static let permutedArchitectures: Set<String> = ["llama", "smollm3", "mistral"]

    public static func applies(toGGUFArchitecture arch: String) -> Bool { permutedArchitectures.contains(arch) }

    /// The HF row that GGUF row `row` holds.
    public static func hfRow(ofGGUFRow row: Int, headDim E: Int) -> Int {
        let h = row / E, r = row % E
        return h * E + (r % 2) * (E / 2) + r / 2
    }

    /// Rows of a GGUF-ordered `[rows, rowWidth]` matrix (or a bias, rowWidth 1) put back in HF order.
    public static func toHuggingFace(_ w: [Float], rowWidth: Int, headDim E: Int) -> [Float] {
        var out = w
        for row in 0..<(w.count / rowWidth) {
            let to = hfRow(ofGGUFRow: row, headDim: E)
            for c in 0..<rowWidth { out[to * rowWidth + c] = w[row * rowWidth + c] }
        }
        return out
    }
}
