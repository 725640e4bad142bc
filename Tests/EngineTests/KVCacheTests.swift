import Checkpoints
import Foundation
import Testing
@testable import Engine

/// Incremental decoding through the key/value cache gives, at every position, the logits of a
/// full forward over the whole prefix, and those of the float64 PyTorch reference.
@Suite struct KVCacheTests {
    /// Prefill `prefill` tokens, then feed the rest `step` tokens at a time; compare the logits of
    /// the last row of every call with the full forward's and the golden ones at that position.
    @Test(arguments: [("nope_lambda", 1, 1), ("nope_lambda", 5, 3), ("window_hybrid", 12, 1), ("qknorm_nope", 4, 2),
                      ("rope_yarn", 1, 1), ("llama_gqa4_tied_bias", 7, 1), ("long_nope_t130", 70, 1)])
    func decodeEqualsFullForward(_ name: String, _ prefill: Int, _ step: Int) throws {
        let c = try GoldenCase(folder: GoldenForwardTests.root.appendingPathComponent(name).path)
        let temps: [[Float]?] = c.lambda.map { Optional($0) }
        let model = try LlamaModel(store: c.checkpoint.store, config: c.config, policy: .resident)
        model.rowChunk = 16   // several chunks in the prefill of the longer cases
        let T = c.tokens[0].count, V = c.config.vocab, B = c.tokens.count
        let full = try model.forward(ForwardRequest(tokens: c.tokens, temperatures: temps, logitPositions: Array(0..<T))).logits
        let golden = try c.golden.readF32("logits")
        let cache = model.makeCache(sequences: B, capacity: T)
        var start = 0, worstFull: Float = 0, worstGolden: Float = 0, calls = 0
        while start < T {
            let n = start == 0 ? prefill : min(step, T - start)
            let logits = try model.decode(c.tokens.map { Array($0[start..<(start + n)]) }, cache: cache, temperatures: temps)
            let t = start + n - 1
            for b in 0..<B {
                let row = Array(logits[(b * V)..<((b + 1) * V)])
                let at = (b * T + t) * V
                worstFull = max(worstFull, GoldenForwardTests.maxAbsDiff(row, Array(full[at..<(at + V)])))
                worstGolden = max(worstGolden, GoldenForwardTests.maxAbsDiff(row, Array(golden[at..<(at + V)])))
            }
            start += n; calls += 1
        }
        print("\(name) prefill \(prefill) step \(step): \(calls) calls, max |Δ| vs full forward \(worstFull), vs float64 reference \(worstGolden)")
        #expect(cache.length == T)
        #expect(worstFull < 2e-5, "\(name): decode differs from the full forward")
        #expect(worstGolden < 2e-4, "\(name): decode differs from the reference")
    }

    @Test func refusesToOverflowTheCache() throws {
        let c = try GoldenCase(folder: GoldenForwardTests.root.appendingPathComponent("nope_lambda").path)
        let model = try LlamaModel(store: c.checkpoint.store, config: c.config, policy: .resident)
        let cache = model.makeCache(sequences: 1, capacity: 4)
        _ = try model.decode([[1, 2, 3]], cache: cache)
        #expect(throws: EngineError.self) { try model.decode([[4, 5]], cache: cache) }
        #expect(cache.length == 3, "a refused call must not advance the cache")
        cache.reset()
        #expect(cache.length == 0)
        _ = try model.decode([[4, 5, 6, 7]], cache: cache)
    }
}

/// A config.json whose numbers do not describe the stored tensors is refused, naming the field
/// or tensor, before anything is allocated from those numbers (issue 13: 10^18 layers aborted,
/// 2^62 widths trapped, a 4M-wide MLP allocated 8 GB, 2 layers of 4 ran silently).
@Suite struct ConfigAgainstWeightsTests {
    static func refusal(_ edit: (inout ModelConfig) -> Void) throws -> String? {
        let c = try GoldenCase(folder: GoldenForwardTests.root.appendingPathComponent("nope_lambda").path)
        var config = c.config
        edit(&config)
        do {
            _ = try LlamaModel(store: c.checkpoint.store, config: config, policy: .resident)
            return nil
        } catch let e as ModelConfigError {
            return "\(e)"
        }
    }

    @Test func hostileNumbersAreRefusedByName() throws {
        #expect(try Self.refusal { $0.layers = 1_000_000_000_000_000_000 }?.contains("num_hidden_layers") == true)
        #expect(try Self.refusal { $0.hidden = 1 << 62 }?.contains("hidden_size") == true)
        #expect(try Self.refusal { $0.headDim = 1 << 62 }?.contains("head_dim") == true)
        #expect(try Self.refusal { $0.intermediate = 4_000_000 }?.contains("mlp.gate_proj.weight") == true)
        #expect(try Self.refusal { $0.layers = 2 }?.contains("layer 2 is stored") == true)
        #expect(try Self.refusal { $0.layers = 4 }?.contains("model.layers.3.input_layernorm.weight' is missing") == true)
        #expect(try Self.refusal { _ in } == nil)
    }
}

/// What the engine does not implement is refused by name instead of run wrongly (issue 13):
/// llama.cpp's rope_freqs factors where RoPE runs (granite's multipliers are refused when a GGUF
/// is decoded: ModelConfigTests).
@Suite struct UnimplementedModelTests {
    /// A store with one more tensor than its base.
    final class WithExtraTensor: TensorStore {
        let base: any TensorStore, extra: TensorInfo
        init(_ base: any TensorStore, extra: TensorInfo) { self.base = base; self.extra = extra }
        var tensors: [TensorInfo] { base.tensors + [extra] }
        var sourcePath: String { base.sourcePath }
        func lookup(_ name: String) -> TensorInfo? { name == extra.name ? extra : base.lookup(name) }
        func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R { try base.withRawBytes(name, body) }
        func releasePages(_ name: String, range: Range<Int>) {}
    }

    @Test func ropeFactorsAreRefused() throws {
        let c = try GoldenCase(folder: GoldenForwardTests.root.appendingPathComponent("rope_yarn").path)
        let factors = TensorInfo(name: LlamaModel.ropeFrequencyFactors, type: .plain(.f32), shape: [c.config.headDim / 2],
                                 byteCount: 2 * c.config.headDim, file: "x", fileOffset: 0)
        let store = WithExtraTensor(c.checkpoint.store, extra: factors)
        #expect(throws: EngineError.self) { _ = try LlamaModel(store: store, config: c.config) }
        var nope = c.config
        nope.positions = Array(repeating: .none, count: nope.layers)
        _ = try LlamaModel(store: store, config: nope)   // no RoPE layer: the factors do not matter
    }
}
