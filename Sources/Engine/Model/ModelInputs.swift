import Checkpoints
import Foundation

/// The weights a whole-model pass reads: resident tables plus one layer at a time. A model
/// read from a checkpoint (`LlamaModel`, which may stream each layer from the file) and
/// in-memory training parameters (`Parameters`) both provide them, so inference, training and
/// the temperature search run the same code.
public protocol ModelWeightSource {
    var config: ModelConfig { get }
    var embedding: [Float] { get }     // [V, D]
    var finalNorm: [Float] { get }     // [D]
    /// [V, D]; nil when the head is tied to the embedding.
    var lmHead: [Float]? { get }
    /// F32 weights of layer `l` (read, and widened, on demand where the source streams).
    func layerWeights(_ l: Int) throws -> LayerWeights
}

extension ModelWeightSource {
    var headWeights: [Float] { lmHead ?? embedding }
}

public enum EngineError: Error, CustomStringConvertible, Equatable {
    case badTokens(String)
    case badTemperatures(String)
    case unsupportedModel(String)

    public var description: String {
        switch self {
        case .badTokens(let d): return "invalid tokens: \(d)"
        case .badTemperatures(let d): return "invalid temperatures: \(d)"
        case .unsupportedModel(let d): return "unsupported model: \(d)"
        }
    }
}

/// The checks and first step every pass shares: token batches and the embedding lookup.
enum Embedding {
    /// Checks `tokens` (B ≥ 1 sequences of one length T ≥ `minimumLength`, ids in the
    /// vocabulary) and returns (T, x [B·T, D] = embedding rows).
    static func gather(_ tokens: [[Int]], table: [Float], config c: ModelConfig, minimumLength: Int = 1) throws -> (Int, FloatBuffer) {
        guard let T = tokens.first?.count, T >= minimumLength, tokens.allSatisfy({ $0.count == T }) else {
            throw EngineError.badTokens("need one or more sequences of the same length ≥ \(minimumLength)")
        }
        if let bad = tokens.joined().first(where: { $0 < 0 || $0 >= c.vocab }) {
            throw EngineError.badTokens("token id \(bad) outside the vocabulary of \(c.vocab)")
        }
        let D = c.hidden
        let x = FloatBuffer(tokens.count * T * D)
        table.withUnsafeBufferPointer { e in
            for (b, seq) in tokens.enumerated() {
                for (t, id) in seq.enumerated() { (x.pointer + (b * T + t) * D).update(from: e.baseAddress! + id * D, count: D) }
            }
        }
        return (T, x)
    }
}

/// Per-layer, per-head temperature multipliers λ as every pass takes them.
public enum Temperatures {
    /// One row of H values per layer: nil (or a nil row) means all 1; every value finite and > 0.
    public static func resolve(_ t: [[Float]?]?, config c: ModelConfig) throws -> [[Float]] {
        let ones = [Float](repeating: 1, count: c.heads)
        guard let t else { return Array(repeating: ones, count: c.layers) }
        guard t.count == c.layers else {
            throw EngineError.badTemperatures("\(t.count) layers given, the model has \(c.layers)")
        }
        return try t.enumerated().map { l, row in
            guard let row else { return ones }
            guard row.count == c.heads else {
                throw EngineError.badTemperatures("layer \(l) has \(row.count) values, the model has \(c.heads) heads")
            }
            guard row.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw EngineError.badTemperatures("layer \(l): temperatures must be finite and positive")
            }
            return row
        }
    }
}
