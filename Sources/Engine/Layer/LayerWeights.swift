import Checkpoints
import Foundation

/// F32 weights of one decoder layer (nn.Linear layout `[out, in]`), read from a checkpoint.
public struct LayerWeights {
    public var attnNorm: [Float]                 // [D]
    public var wq: [Float], wk: [Float], wv: [Float], wo: [Float]   // [H·E, D], [G·E, D], [G·E, D], [D, H·E]
    public var bq: [Float]?, bk: [Float]?, bv: [Float]?, bo: [Float]?
    public var qNorm: [Float]?, kNorm: [Float]?  // [E]
    public var mlpNorm: [Float]                  // [D]
    public var wGate: [Float], wUp: [Float], wDown: [Float]        // [F, D], [F, D], [D, F]
    public var bGate: [Float]?, bUp: [Float]?, bDown: [Float]?

    public init(attnNorm: [Float], wq: [Float], wk: [Float], wv: [Float], wo: [Float], bq: [Float]?, bk: [Float]?, bv: [Float]?,
                bo: [Float]?, qNorm: [Float]?, kNorm: [Float]?, mlpNorm: [Float], wGate: [Float], wUp: [Float], wDown: [Float],
                bGate: [Float]?, bUp: [Float]?, bDown: [Float]?) {
        self.attnNorm = attnNorm; self.wq = wq; self.wk = wk; self.wv = wv; self.wo = wo
        self.bq = bq; self.bk = bk; self.bv = bv; self.bo = bo; self.qNorm = qNorm; self.kNorm = kNorm
        self.mlpNorm = mlpNorm; self.wGate = wGate; self.wUp = wUp; self.wDown = wDown
        self.bGate = bGate; self.bUp = bUp; self.bDown = bDown
    }
}

public enum WeightError: Error, CustomStringConvertible, Equatable {
    case missing(source: String, tensor: String)
    case wrongShape(source: String, tensor: String, expected: [Int], actual: [Int])
    case nonFinite(source: String, tensor: String, count: Int)

    public var description: String {
        switch self {
        case .missing(let s, let t): return "\(s): tensor '\(t)' is missing; the checkpoint does not match its config"
        case .wrongShape(let s, let t, let e, let a): return "\(s): tensor '\(t)' has shape \(a), the config implies \(e)"
        case .nonFinite(let s, let t, let n):
            return "\(s): tensor '\(t)' holds \(n) non-finite value\(n == 1 ? "" : "s") (NaN or ±Inf); the checkpoint is damaged: download or convert it again"
        }
    }
}

/// Reads the F32 weights the engine needs, layer by layer, checking every shape against the
/// config. Names come from the one table (`TensorRole`); GGUF Q/K rows that llama.cpp's
/// converter permuted are put back in HF order (`QKPermutation`).
public struct WeightReader {
    public let store: any TensorStore
    public let config: ModelConfig
    public let convention: NameConvention
    let unpermuteQK: Bool
    /// Tensors already found finite: a streamed model reads every layer again on every pass
    /// (and every decode step), and the scan need not run again.
    let checked = CheckedNames()

    public init(store: any TensorStore, config: ModelConfig) {
        self.store = store
        self.config = config
        convention = NameConvention.detect(store)
        unpermuteQK = convention == .gguf && QKPermutation.applies(toGGUFArchitecture: config.modelType)
    }

    public func name(_ role: TensorRole) -> String { role.name(convention) }

    public func read(_ name: String, shape: [Int]) throws -> [Float] {
        guard let info = store.lookup(name) else { throw WeightError.missing(source: store.sourcePath, tensor: name) }
        guard info.shape == shape || (info.shape.reduce(1, *) == shape.reduce(1, *) && shape.count == 1) else {
            throw WeightError.wrongShape(source: store.sourcePath, tensor: name, expected: shape, actual: info.shape)
        }
        let values = try store.readF32(name)
        store.releasePages(name)
        // A NaN or Inf weight would turn every output into NaN (or trap an integer conversion
        // downstream): refuse it here, by name.
        if !checked.contains(name) {
            guard Kernels.allFinite(values) else {
                throw WeightError.nonFinite(source: store.sourcePath, tensor: name, count: values.filter { !$0.isFinite }.count)
            }
            checked.insert(name)
        }
        return values
    }

    /// The tensor with `role`, in HF row order.
    public func read(_ role: TensorRole) throws -> [Float] {
        let values = try read(name(role), shape: role.shape(config))
        guard unpermuteQK && QKPermutation.reorders(role) else { return values }
        // A weight's rows are `hidden` wide; a bias moves element by element.
        return QKPermutation.toHuggingFace(values, rowWidth: role.shape(config).count == 2 ? config.hidden : 1, headDim: config.headDim)
    }

    /// The tensor if the config implies it or the file has it.
    func optional(_ l: Int, _ t: LayerTensor) throws -> [Float]? {
        guard t.expected(in: config) || store.contains(name(.layer(l, t))) else { return nil }
        return try read(.layer(l, t))
    }

    /// The output head, or nil when the model ties it to the embedding and the file has none.
    public func lmHead() throws -> [Float]? {
        config.tiedEmbeddings && !store.contains(name(.lmHead)) ? nil : try read(.lmHead)
    }

    public func layer(_ l: Int) throws -> LayerWeights {
        func r(_ t: LayerTensor) throws -> [Float] { try read(.layer(l, t)) }
        func o(_ t: LayerTensor) throws -> [Float]? { try optional(l, t) }
        return LayerWeights(
            attnNorm: try r(.attnNorm), wq: try r(.q), wk: try r(.k), wv: try r(.v), wo: try r(.o),
            bq: try o(.qBias), bk: try o(.kBias), bv: try o(.vBias), bo: try o(.oBias),
            qNorm: try o(.qNorm), kNorm: try o(.kNorm), mlpNorm: try r(.mlpNorm),
            wGate: try r(.gate), wUp: try r(.up), wDown: try r(.down),
            bGate: try o(.gateBias), bUp: try o(.upBias), bDown: try o(.downBias))
    }
}

/// A set of tensor names shared by the copies of a `WeightReader` (attention workers may read
/// concurrently, hence the lock).
final class CheckedNames: @unchecked Sendable {
    private var names = Set<String>()
    private let lock = NSLock()

    func contains(_ name: String) -> Bool { lock.lock(); defer { lock.unlock() }; return names.contains(name) }
    func insert(_ name: String) { lock.lock(); names.insert(name); lock.unlock() }
}
