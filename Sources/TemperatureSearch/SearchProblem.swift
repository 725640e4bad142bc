import Checkpoints
import DataParallel
import Engine
import Foundation

/// What every search works on: a model (frozen), the layers and granularity being searched,
/// calibration data, and the two lengths that matter (where the model was trained, where it
/// should work). The searched quantity is a vector of scales s; `scales(_:)` expands it into
/// the per-layer, per-head multipliers the engine takes (1 for layers not searched).
public final class SearchProblem {
    public enum Granularity: String, Sendable { case head, layer }

    public let model: LlamaModel
    public let data: CalibrationData
    public let searchedLayers: [Int]
    public let granularity: Granularity
    public let targetLength: Int
    public let trainingLength: Int
    /// Held-out windows for each reported loss.
    public let evalSequences: Int
    let backprop: Backprop
    /// Activations beyond the weights may take this many bytes: the backward keeps all of
    /// them, or the attention half, or recomputes, whichever is fastest within it.
    public var activationBudget = 2 << 30
    /// The job's ranks: held-out windows and each step's sequences are dealt out across them
    /// (`mpirun -np N nopekit search`); one process by default.
    public var collective: any Collective = SingleProcess()

    public var config: ModelConfig { model.config }

    /// The layers a `--layers` value names: `nope` (the NoPE layers: the default, since RoPE
    /// layers do not fail the same way), `all`, or a list such as `1,3`.
    public static func layers(_ spec: String, config c: ModelConfig, model: String) throws -> [Int] {
        switch spec {
        case "nope":
            let nope = defaultLayers(c)
            guard !nope.isEmpty else {
                throw SearchError.badSettings("\(model) has no NoPE layers (positions: \(PositionSpec.describe(c.positions))); pass --layers all to search RoPE layers, or --position if the config is wrong")
            }
            return nope
        case "all":
            return Array(0..<c.layers)
        default:
            let list = spec.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !list.isEmpty, list.allSatisfy({ $0 != nil && (0..<c.layers).contains($0!) }) else {
                throw SearchError.badSettings("--layers must be nope, all or a list of layers in 0..<\(c.layers)")
            }
            return list.map { $0! }
        }
    }

    /// Per head, unless one q-norm weight is shared by the heads of a layer: then only a
    /// per-layer temperature can be baked (`BakeTarget.sharedQueryNorm`).
    public static func defaultGranularity(_ c: ModelConfig, store: any TensorStore) -> Granularity {
        BakeTarget.of(c, store: store) == .sharedQueryNorm ? .layer : .head
    }

    /// Number of searched values.
    public var count: Int { searchedLayers.count * (granularity == .head ? config.heads : 1) }

    public init(model: LlamaModel, data: CalibrationData, searchedLayers: [Int], granularity: Granularity,
                targetLength: Int, trainingLength: Int, evalSequences: Int = 8) throws {
        let c = model.config
        guard !searchedLayers.isEmpty, searchedLayers.allSatisfy({ (0..<c.layers).contains($0) }) else {
            throw SearchError.badSettings("searched layers must be among 0..<\(c.layers)")
        }
        guard targetLength >= 2, trainingLength >= 2 else { throw SearchError.badSettings("lengths must be at least 2") }
        self.model = model
        self.data = data
        self.searchedLayers = searchedLayers.sorted()
        self.granularity = granularity
        self.targetLength = targetLength
        self.trainingLength = trainingLength
        self.evalSequences = evalSequences
        backprop = Backprop(config: c, threads: model.threads)
    }

    /// The layers a search touches by default: the NoPE layers (a hybrid's RoPE layers keep 1).
    public static func defaultLayers(_ c: ModelConfig) -> [Int] { c.positions.indices.filter { c.positions[$0] == .none } }

    /// [L][H] multipliers for the engine from the searched vector.
    public func scales(_ s: [Float]) -> [[Float]] {
        let H = config.heads
        var out = [[Float]](repeating: [Float](repeating: 1, count: H), count: config.layers)
        for (i, l) in searchedLayers.enumerated() {
            out[l] = granularity == .head ? Array(s[(i * H)..<((i + 1) * H)]) : [Float](repeating: s[i], count: H)
        }
        return out
    }

    /// The table's rows: the searched layers' multipliers, nil for the others.
    public func tableRows(_ s: [Float]) -> [[Float]?] {
        let full = scales(s)
        return (0..<config.layers).map { searchedLayers.contains($0) ? full[$0] : nil }
    }

    /// The same value everywhere searched.
    public func uniform(_ value: Float) -> [Float] { [Float](repeating: value, count: count) }

    /// Mean next-token loss (nats) over the held-out windows of `length`, with scales `s`.
    public func heldOutLoss(_ s: [Float], length: Int) throws -> Double {
        let windows = try data.heldOutWindows(length: length, count: evalSequences)
        // one window per item; summed in window order on every rank, as one process sums them
        let losses = try collective.map(windows.count) { i in
            try model.forward(ForwardRequest(tokens: [windows[i]], temperatures: scales(s).map { Optional($0) }, losses: true)).losses
        }
        var total = 0.0, n = 0
        for l in losses {
            total += l.reduce(0.0) { $0 + Double($1) }
            n += l.count
        }
        return total / Double(max(1, n))
    }

    /// Loss of one sequence and d loss / d s (heads of a tied layer sum their gradients).
    public func lossAndGradient(_ s: [Float], sequence: [Int]) throws -> (loss: Float, gradient: [Float]) {
        let c = config
        let searched = (0..<c.layers).map { searchedLayers.contains($0) }
        let lowest = searchedLayers[0]
        let policy = backprop.activations(sequences: 1, length: sequence.count, searchedFrom: lowest, budget: activationBudget)
        let r = try backprop.lossAndTemperatureGradient(model, tokens: [sequence], lambda: scales(s), searched: searched, activations: policy)
        var g = [Float](repeating: 0, count: count)
        for (i, l) in searchedLayers.enumerated() {
            if granularity == .head {
                for h in 0..<c.heads { g[i * c.heads + h] = r.lambda[l][h] }
            } else {
                g[i] = r.lambda[l].reduce(0, +)
            }
        }
        return (r.loss, g)
    }
}
