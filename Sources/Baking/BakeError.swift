import Checkpoints

/// Why a bake was refused. Every case names the file and what to do; a refused bake writes
/// nothing.
public enum BakeError: Error, CustomStringConvertible, Equatable {
    case notBakeable(source: String, reason: String)
    case perHeadTableForSharedNorm(table: String, layer: Int)
    case missingTensor(source: String, tensor: String)
    case wrongShape(source: String, tensor: String, expected: [Int], actual: [Int])
    case cannotScale(source: String, tensor: String, reason: String)
    case noCheckpointScales(source: String)
    case alreadyBaked(source: String)
    case outputInsideInput(output: String, input: String)
    case formatChange(source: String, requested: String)
    case unsupportedOutput(output: String, detail: String)

    public var description: String {
        switch self {
        case .notBakeable(let s, let r):
            return "\(s): a constant temperature cannot be baked into this model: \(r)"
        case .perHeadTableForSharedNorm(let t, let l):
            return "\(t): layer \(l) has different scales per head, but this model's q-norm weight is shared by all heads and can carry one scale per layer; search with --granularity layer"
        case .missingTensor(let s, let t):
            return "\(s): tensor '\(t)' is missing; the checkpoint does not match its config"
        case .wrongShape(let s, let t, let e, let a):
            return "\(s): tensor '\(t)' has shape \(a), the config implies \(e)"
        case .cannotScale(let s, let t, let r):
            return "\(s): cannot scale '\(t)' in place: \(r)"
        case .noCheckpointScales(let s):
            return "\(s): no '…self_attn.scale_param' tensors found; --from-checkpoint-scales reads the per-head multipliers HeadScale checkpoints store there"
        case .alreadyBaked(let s):
            return "\(s): already carries baked temperatures (nopekit_temperatures); bake the original checkpoint, or its scales would multiply"
        case .outputInsideInput(let o, let i):
            return "\(o): the output would be the input or inside it (\(i)); choose a path outside the source"
        case .formatChange(let s, let r):
            return "\(s): --format \(r) converts to the other format, but \(r) is this source's own format; bake without --format (or with --format same)"
        case .unsupportedOutput(let o, let d):
            return "\(o): \(d)"
        }
    }
}
