import Checkpoints
import Engine
import Foundation

/// A random-weight model of a given shape, held in memory, for benchmarks: a `TensorStore`
/// whose tensors of equal shape share one buffer of uniform values in ±0.035 (the scale of a
/// 0.02-σ init), so a 1.1 B-parameter shape costs one layer of memory, not 4.4 GB.
public final class SyntheticModel: TensorStore {
    public let config: ModelConfig
    public let tensors: [TensorInfo]
    public var sourcePath: String { "synthetic:\(config.modelType)" }
    private var buffers: [[Int]: [Float]] = [:]
    private let byName: [String: TensorInfo]

    /// TinyLlama-1.1B: 22 layers, hidden 2048, 32 heads × 64, 4 KV heads, MLP 5632, vocab 32000.
    public static func tinyLlamaConfig(position: PositionEncoding = .none) -> ModelConfig {
        ModelConfig(modelType: "llama", layers: 22, heads: 32, kvHeads: 4, headDim: 64, hidden: 2048, intermediate: 5632,
                    vocab: 32000, normEps: 1e-5, tiedEmbeddings: false, attentionBias: false, mlpBias: false, qkNorm: false,
                    maxPositionEmbeddings: 2048, rope: RopeParameters(theta: 10000, partialRotaryFactor: 1),
                    positions: Array(repeating: position, count: 22), positionSource: "synthetic", temperatureTuning: nil,
                    declaredDType: "float32", bosTokenID: 1, eosTokenIDs: [2])
    }

    public init(config c: ModelConfig) {
        self.config = c
        let roles = TensorRole.all(c)
        let list = roles.map { ($0.name(.huggingFace), $0.shape(c)) }
        tensors = list.map { TensorInfo(name: $0.0, dtype: .f32, shape: $0.1, byteCount: 4 * $0.1.reduce(1, *), file: "synthetic", fileOffset: 0) }
        byName = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, $0) })
        var state: UInt64 = 0x1234_5678
        for t in tensors where buffers[t.shape] == nil {
            let isNorm = t.shape.count == 1
            buffers[t.shape] = (0..<t.elementCount).map { _ in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return isNorm ? 1 : (Float(state >> 40) / Float(1 << 24) - 0.5) * 0.07
            }
        }
    }

    public func lookup(_ name: String) -> TensorInfo? { byName[name] }

    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let t = byName[name], let buffer = buffers[t.shape] else { throw TensorStoreError.tensorNotFound(name: name, source: sourcePath) }
        return try buffer.withUnsafeBytes { try body($0) }
    }

    public func releasePages(_ name: String, range: Range<Int>) {}

    /// Multiply–adds ×2 of one forward over `tokens` positions of one sequence: the weight
    /// products plus causal attention (QKᵀ and PV over the lower triangle).
    public static func forwardFLOPs(_ c: ModelConfig, tokens T: Int) -> Double {
        let D = Double(c.hidden), E = Double(c.headDim), H = Double(c.heads), G = Double(c.kvHeads), F = Double(c.intermediate)
        let perTokenLayer = 2 * (D * H * E + 2 * D * G * E + H * E * D + 3 * D * F)
        let attentionLayer = 2 * 2 * H * E * Double(T) * Double(T + 1) / 2
        return Double(c.layers) * (perTokenLayer * Double(T) + attentionLayer) + 2 * D * Double(c.vocab) * Double(T)
    }
}

/// Peak and current resident set size of this process, from /proc/self/status (bytes).
public enum MemoryUsage {
    public static func kilobytes(_ field: String) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0") ?? 0
        }
        return 0
    }
    public static var peakBytes: Int { kilobytes("VmHWM") * 1024 }
    public static var currentBytes: Int { kilobytes("VmRSS") * 1024 }
}
