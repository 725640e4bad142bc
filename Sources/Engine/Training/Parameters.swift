import Checkpoints
import Foundation

/// Every weight of a model in F32, mutable (training) and addressable by HF name (saving,
/// the optimiser, gradient checks). Gradients use the same structure.
public struct Parameters: ModelWeightSource {
    public var config: ModelConfig
    public var embedding: [Float]          // [V, D]
    public var layers: [LayerWeights]
    public var finalNorm: [Float]          // [D]
    public var lmHead: [Float]?            // [V, D]; nil when tied

    public init(config: ModelConfig, embedding: [Float], layers: [LayerWeights], finalNorm: [Float], lmHead: [Float]?) {
        self.config = config
        self.embedding = embedding
        self.layers = layers
        self.finalNorm = finalNorm
        self.lmHead = lmHead
    }

    /// All weights read from a checkpoint.
    public init(store: any TensorStore, config: ModelConfig) throws {
        let reader = WeightReader(store: store, config: config)
        self.config = config
        embedding = try reader.read(.embedding)
        finalNorm = try reader.read(.finalNorm)
        lmHead = try reader.lmHead()
        layers = try (0..<config.layers).map { try reader.layer($0) }
    }

    public func layerWeights(_ l: Int) throws -> LayerWeights { layers[l] }

    /// Zeros shaped like `other` (gradient buffers).
    public init(zerosLike other: Parameters) {
        config = other.config
        embedding = Array(repeating: 0, count: other.embedding.count)
        finalNorm = Array(repeating: 0, count: other.finalNorm.count)
        lmHead = other.lmHead.map { Array(repeating: 0, count: $0.count) }
        layers = other.layers.map { l in
            func z(_ a: [Float]) -> [Float] { Array(repeating: 0, count: a.count) }
            return LayerWeights(attnNorm: z(l.attnNorm), wq: z(l.wq), wk: z(l.wk), wv: z(l.wv), wo: z(l.wo),
                                bq: l.bq.map(z), bk: l.bk.map(z), bv: l.bv.map(z), bo: l.bo.map(z),
                                qNorm: l.qNorm.map(z), kNorm: l.kNorm.map(z), mlpNorm: z(l.mlpNorm),
                                wGate: z(l.wGate), wUp: z(l.wUp), wDown: z(l.wDown),
                                bGate: l.bGate.map(z), bUp: l.bUp.map(z), bDown: l.bDown.map(z))
        }
    }

    /// HF names and shapes in a fixed order (embedding, layers, norm, head); a layer's biases
    /// and q/k norms are listed where it has them.
    public var tensorList: [(name: String, shape: [Int])] {
        var list: [(String, [Int])] = [(TensorRole.embedding.name(.huggingFace), TensorRole.embedding.shape(config))]
        for (l, w) in layers.enumerated() {
            for t in LayerTensor.allCases where Self.has(w, t) {
                let role = TensorRole.layer(l, t)
                list.append((role.name(.huggingFace), role.shape(config)))
            }
        }
        list.append((TensorRole.finalNorm.name(.huggingFace), TensorRole.finalNorm.shape(config)))
        if lmHead != nil { list.append((TensorRole.lmHead.name(.huggingFace), TensorRole.lmHead.shape(config))) }
        return list
    }

    /// Where each layer tensor lives in `LayerWeights`: a field every layer has, or one it may lack.
    enum Field {
        case required(WritableKeyPath<LayerWeights, [Float]>)
        case optional(WritableKeyPath<LayerWeights, [Float]?>)
    }

    static func field(_ t: LayerTensor) -> Field {
        switch t {
        case .attnNorm: return .required(\.attnNorm)
        case .q: return .required(\.wq)
        case .k: return .required(\.wk)
        case .v: return .required(\.wv)
        case .o: return .required(\.wo)
        case .mlpNorm: return .required(\.mlpNorm)
        case .gate: return .required(\.wGate)
        case .up: return .required(\.wUp)
        case .down: return .required(\.wDown)
        case .qBias: return .optional(\.bq)
        case .kBias: return .optional(\.bk)
        case .vBias: return .optional(\.bv)
        case .oBias: return .optional(\.bo)
        case .qNorm: return .optional(\.qNorm)
        case .kNorm: return .optional(\.kNorm)
        case .gateBias: return .optional(\.bGate)
        case .upBias: return .optional(\.bUp)
        case .downBias: return .optional(\.bDown)
        }
    }

    static func has(_ w: LayerWeights, _ t: LayerTensor) -> Bool {
        if case .optional(let path) = field(t) { return w[keyPath: path] != nil }
        return true
    }

    /// Reads or writes the tensor called `name` (an HF name) through `body`.
    public mutating func withTensor<R>(_ name: String, _ body: (inout [Float]) throws -> R) rethrows -> R? {
        switch TensorRole.parse(name, .huggingFace) {
        case .embedding: return try body(&embedding)
        case .finalNorm: return try body(&finalNorm)
        case .lmHead:
            guard lmHead != nil else { return nil }
            return try body(&lmHead!)
        case .layer(let l, let t):
            guard layers.indices.contains(l) else { return nil }
            switch Self.field(t) {
            case .required(let path): return try body(&layers[l][keyPath: path])
            case .optional(let path):
                guard layers[l][keyPath: path] != nil else { return nil }
                return try body(&layers[l][keyPath: path]!)
            }
        case nil: return nil
        }
    }

    public func tensor(_ name: String) -> [Float]? {
        var copy = self
        return copy.withTensor(name) { $0 }
    }
}

/// A `TensorStore` over `Parameters` (HF names, F32), so the inference engine and the writers
/// run on weights that live in memory (training, tests).
public final class ParameterStore: TensorStore {
    public let parameters: Parameters
    public let tensors: [TensorInfo]
    private let byName: [String: TensorInfo]
    public var sourcePath: String { "in-memory parameters" }

    public init(_ p: Parameters) {
        parameters = p
        tensors = p.tensorList.map { TensorInfo(name: $0.name, dtype: .f32, shape: $0.shape, byteCount: 4 * $0.shape.reduce(1, *), file: "memory", fileOffset: 0) }
        byName = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, $0) })
    }

    public func lookup(_ name: String) -> TensorInfo? { byName[name] }

    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let t = parameters.tensor(name) else { throw TensorStoreError.tensorNotFound(name: name, source: sourcePath) }
        return try t.withUnsafeBytes(body)
    }

    public func releasePages(_ name: String, range: Range<Int>) {}
}
