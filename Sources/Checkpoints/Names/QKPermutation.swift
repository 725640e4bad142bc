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

    /// Whether llama.cpp's converter reorders this tensor's rows: the Q and K projections and
    /// their biases.
    public static func reorders(_ role: TensorRole) -> Bool {
        guard case .layer(_, let t) = role else { return false }
        return [.q, .qBias, .k, .kBias].contains(t)
    }

    /// Which way rows move.
    public enum Direction: Sendable {
        /// HF rotate-half order → ggml adjacent pairs (llama.cpp's converter).
        case toGGUF
        /// ggml adjacent pairs → HF rotate-half order (the engine reading GGUF, GGUF → HF).
        case toHuggingFace
    }

    /// The HF row that GGUF row `row` holds.
    public static func hfRow(ofGGUFRow row: Int, headDim E: Int) -> Int {
        let h = row / E, r = row % E
        return h * E + (r % 2) * (E / 2) + r / 2
    }

    /// Reorders the rows of a `[rows, rowWidth]` block (or a bias, rowWidth 1) in place; the
    /// block starts at a head boundary and holds whole heads.
    public static func permute(_ w: UnsafeMutableBufferPointer<Float>, rowWidth: Int, headDim E: Int, _ direction: Direction) {
        let source = Array(w)
        for ggufRow in 0..<(w.count / rowWidth) {
            let hfRow = hfRow(ofGGUFRow: ggufRow, headDim: E)
            let (to, from) = direction == .toHuggingFace ? (hfRow, ggufRow) : (ggufRow, hfRow)
            for c in 0..<rowWidth { w[to * rowWidth + c] = source[from * rowWidth + c] }
        }
    }

    /// Rows of a GGUF-ordered `[rows, rowWidth]` matrix (or a bias, rowWidth 1) put back in HF order.
    public static func toHuggingFace(_ w: [Float], rowWidth: Int, headDim E: Int) -> [Float] {
        var out = w
        out.withUnsafeMutableBufferPointer { permute($0, rowWidth: rowWidth, headDim: E, .toHuggingFace) }
        return out
    }
}
