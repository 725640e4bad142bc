/// Where a per-head temperature goes in a model's weights, decided from its config and the
/// shape of its q-norm weight (headers only).
///
/// Attention logits of head h are s_h·(q·k)/√d. Without a q-norm, scaling the rows of `q_proj`
/// (and its bias) that produce head h by s_h gives exactly that. A q-norm between `q_proj` and
/// the attention undoes any row scale, so the scale must go into the norm's weight instead: per
/// head if the weight is `[heads·head_dim]`, per layer only if one `[head_dim]` weight is shared
/// by all heads (Qwen3).
public enum BakeTarget: Equatable, Sendable {
    /// Rows of `q_proj` and its bias: any per-head table.
    case queryRows
    /// A per-head q-norm weight `[heads·head_dim]`: any per-head table.
    case perHeadQueryNorm
    /// A q-norm weight shared by the heads `[head_dim]`: tables constant within each layer only.
    case sharedQueryNorm
    /// Nothing constant can express the model's temperature, or nothing holds it.
    case notBakeable(reason: String)

    public static func of(_ config: ModelConfig, store: any TensorStore) -> BakeTarget {
        if let reason = config.notBakeableReason { return .notBakeable(reason: reason) }
        guard config.qkNorm else { return .queryRows }
        let convention = NameConvention.detect(store)
        let norms = (0..<config.layers).compactMap { store.lookup(TensorRole.layer($0, .qNorm).name(convention)) }
        guard norms.count == config.layers else {
            return .notBakeable(reason: "\(config.modelType) normalises q without a weight in some layers, which would undo a scale on q_proj rows")
        }
        let E = config.headDim, H = config.heads
        if norms.allSatisfy({ $0.elementCount == H * E && H > 1 }) { return .perHeadQueryNorm }
        if norms.allSatisfy({ $0.elementCount == E }) { return .sharedQueryNorm }
        return .notBakeable(reason: "q-norm weights of \(norms.map(\.elementCount)) elements fit neither [head_dim] nor [heads·head_dim]")
    }

    public var isBakeable: Bool { if case .notBakeable = self { return false } else { return true } }

    /// Whether a table may differ between the heads of a layer.
    public var perHead: Bool { self == .queryRows || self == .perHeadQueryNorm }

    /// One line for `inspect`.
    public var summary: String {
        switch self {
        case .queryRows: return "yes: per-head temperatures, exact as a scale on q_proj rows"
        case .perHeadQueryNorm: return "yes: per-head temperatures, as a scale on the per-head q-norm weight (q_proj rows would be undone by the norm)"
        case .sharedQueryNorm: return "per layer only: one q-norm weight is shared by all heads, so it can carry one temperature per layer (search with --granularity layer)"
        case .notBakeable(let reason): return "no: \(reason)"
        }
    }

    /// A short name for JSON.
    public var name: String {
        switch self {
        case .queryRows: return "q_proj_rows"
        case .perHeadQueryNorm: return "q_norm_per_head"
        case .sharedQueryNorm: return "q_norm_per_layer"
        case .notBakeable: return "none"
        }
    }
}
