import Checkpoints
import Foundation
import Testing
@testable import Engine

/// The forward pass against a float64 PyTorch reference (scripts/reference/make_engine_goldens.py,
/// cross-checked against transformers in fixtures/engine/crosscheck.txt).
@Suite struct GoldenForwardTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures/engine")

    static var cases: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? [])
            .filter { FileManager.default.fileExists(atPath: root.appendingPathComponent($0).appendingPathComponent("golden.safetensors").path) }
            .sorted()
    }

    static func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count, "sizes \(a.count) vs \(b.count)")
        return zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }

    @Test func everyCaseIsPresent() {
        #expect(Self.cases.count >= 9, "cases: \(Self.cases)")
    }

    @Test(arguments: GoldenForwardTests.cases)
    func matchesReference(_ name: String) throws { try check(name, rowChunk: 512) }

    /// The same with small row chunks, so every layer runs over several chunks per sequence.
    @Test(arguments: ["long_nope_t130", "smollm3_every4", "rope_yarn"])
    func matchesReferenceInSmallChunks(_ name: String) throws { try check(name, rowChunk: 16) }

    func check(_ name: String, rowChunk: Int) throws {
        let c = try GoldenCase(folder: Self.root.appendingPathComponent(name).path)
        let (checkpoint, config, golden, tokens) = (c.checkpoint, c.config, c.golden, c.tokens)
        let T = tokens[0].count
        let temps: [[Float]?] = c.lambda.map { Optional($0) }
        let model = try LlamaModel(store: checkpoint.store, config: config, policy: .resident)
        model.rowChunk = rowChunk
        let r = try model.forward(ForwardRequest(tokens: tokens, temperatures: temps, logitPositions: Array(0..<T),
                                                 losses: true, entropy: true, hiddenStates: true))
        let dLogits = Self.maxAbsDiff(r.logits, try golden.readF32("logits"))
        let dLoss = Self.maxAbsDiff(r.losses, try golden.readF32("losses"))
        let dEntropy = Self.maxAbsDiff(r.entropy, try golden.readF32("entropy"))
        let dHidden = Self.maxAbsDiff(r.hidden, try golden.readF32("hidden"))
        print("\(name) (row chunk \(rowChunk)): max |Δ| logits \(dLogits), loss \(dLoss), entropy(bits) \(dEntropy), hidden \(dHidden)")
        #expect(dLogits < 2e-4, "\(name) logits")
        #expect(dLoss < 2e-4, "\(name) losses")
        #expect(dEntropy < 2e-4, "\(name) entropy")
        #expect(dHidden < 2e-4, "\(name) hidden")
    }

    /// λ = 1 everywhere must give exactly what no temperature gives.
    @Test func unitTemperaturesAreBitIdentical() throws {
        let name = try #require(Self.cases.first, "no golden cases found")
        let checkpoint = try Checkpoint.open(Self.root.appendingPathComponent(name).path)
        let config = try checkpoint.requireConfig()
        let model = try LlamaModel(store: checkpoint.store, config: config, policy: .resident)
        let tokens = [[1, 5, 9, 3, 7, 2, 8]]
        let plain = try model.forward(ForwardRequest(tokens: tokens, logitPositions: Array(0..<7), entropy: true))
        let ones = try model.forward(ForwardRequest(tokens: tokens, temperatures: Array(repeating: Array(repeating: 1, count: config.heads), count: config.layers),
                                                    logitPositions: Array(0..<7), entropy: true))
        #expect(plain.logits.map(\.bitPattern) == ones.logits.map(\.bitPattern))
        #expect(plain.entropy.map(\.bitPattern) == ones.entropy.map(\.bitPattern))
        #expect(throws: EngineError.self) { try model.forward(ForwardRequest(tokens: [[0, 999]])) }
        #expect(throws: EngineError.self) { try model.forward(ForwardRequest(tokens: tokens, temperatures: [[1]])) }
    }
}

/// The tiled online-softmax attention against the full-row reference.
@Suite(.serialized) struct AttentionTests {
    @Test(arguments: [(37, 4, 2, 16, nil), (130, 8, 2, 8, nil), (300, 2, 1, 32, nil), (1, 2, 2, 4, nil),
                      (130, 4, 2, 8, 20), (300, 2, 1, 16, 48), (50, 2, 2, 8, 1)] as [(Int, Int, Int, Int, Int?)])
    func tiledMatchesNaive(_ T: Int, _ H: Int, _ G: Int, _ E: Int, _ window: Int?) {
        let saved = (Attention.queryTile, Attention.keyTile)
        Attention.queryTile = 16; Attention.keyTile = 48  // lengths are not multiples of either
        defer { (Attention.queryTile, Attention.keyTile) = saved }
        var rng = UInt64(T * 1000 + H)
        func rand() -> Float { rng = rng &* 6_364_136_223_846_793_005 &+ 1; return Float(Int(rng >> 40) % 2001 - 1000) / 300 }
        let q = (0..<(T * H * E)).map { _ in rand() }, k = (0..<(T * G * E)).map { _ in rand() }, v = (0..<(T * G * E)).map { _ in rand() }
        let lambda = (0..<H).map { 0.7 + 0.3 * Float($0) }
        let shape = Attention.Shape(length: T, heads: H, kvHeads: G, headDim: E, window: window)
        var outTiled = [Float](repeating: 0, count: T * H * E), outNaive = outTiled
        var entTiled = [Float](repeating: 0, count: H * T), entNaive = entTiled
        // Attention.tiled switches OpenBLAS (process-wide) to one thread while it runs: hold the pass
        // lock, as engine passes do, so a pass running in another test is not disturbed.
        BLASRuntime.exclusive {
            Attention.tiled(q: q, k: k, v: v, out: &outTiled, entropy: &entTiled, lambda: lambda, shape: shape, threads: 2)
        }
        Attention.naive(q: q, k: k, v: v, out: &outNaive, entropy: &entNaive, lambda: lambda, shape: shape)
        let dOut = zip(outTiled, outNaive).map { abs($0 - $1) }.max() ?? 0
        let dEnt = zip(entTiled, entNaive).map { abs($0 - $1) }.max() ?? 0
        print("attention T=\(T) H=\(H) G=\(G) E=\(E) window \(window.map(String.init) ?? "none"): max |Δ| out \(dOut), entropy \(dEnt)")
        #expect(dOut < 1e-4 && dEnt < 1e-4)
    }
}

@Suite struct KernelTests {
    @Test func fastKernelsMatchNaive() {
        let n = 7, i = 33, o = 19
        let x = (0..<(n * i)).map { Float(($0 * 37) % 23) / 11 - 1 }
        let w = (0..<(o * i)).map { Float(($0 * 53) % 29) / 13 - 1 }
        let b = (0..<o).map { Float($0) / 10 }
        var fast = [Float](repeating: 0, count: n * o), slow = fast
        BLASRuntime.exclusive { Kernels.matmul(&fast, x, w, bias: b, rows: n, in: i, out: o) }
        Kernels.matmulNaive(&slow, x, w, bias: b, rows: n, in: i, out: o)
        #expect(zip(fast, slow).allSatisfy { abs($0 - $1) < 1e-4 })
        var nf = [Float](repeating: 0, count: n * i), ns = nf
        Kernels.rmsnorm(&nf, x, Array(w.prefix(i)), rows: n, width: i, eps: 1e-5)
        Kernels.rmsnormNaive(&ns, x, Array(w.prefix(i)), rows: n, width: i, eps: 1e-5)
        #expect(zip(nf, ns).allSatisfy { abs($0 - $1) < 1e-5 })
    }

    @Test func swigluMatchesNaive() {
        for n in [0, 5, 16, 37, 512] {
            let g = (0..<n).map { Float($0 % 23) * 0.9 - 10 }, u = (0..<n).map { Float($0 % 7) * 0.3 - 1 }
            var fast = g, naive = g
            Kernels.swiglu(&fast, u, count: n)
            Kernels.swigluNaive(&naive, u, count: n)
            #expect(fast == naive, "n = \(n)")
        }
    }

    /// A NaN reached the integer conversion of the fast exp and killed the process (issue 13).
    @Test func fastExpPassesNaNThrough() {
        #expect(FastMath.exp(Float.nan).isNaN)
        #expect(FastMath.exp(-Float.infinity) == 0 && FastMath.exp(Float.infinity) == .infinity)
    }

    @Test func allFiniteMatchesNaive() {
        for count in [0, 1, 15, 16, 17, 100] {
            for bad in [Float.nan, .infinity, -.infinity] {
                for at in Set([0, count / 2, count - 1]) where count > 0 {
                    var v = (0..<count).map { Float($0) * 0.25 - 3 }
                    #expect(Kernels.allFinite(v) && Kernels.allFiniteNaive(v))
                    v[at] = bad
                    #expect(!Kernels.allFinite(v) && !Kernels.allFiniteNaive(v), "\(bad) at \(at) of \(count)")
                }
            }
        }
        #expect(Kernels.allFinite([]) && Kernels.allFinite([Float.greatestFiniteMagnitude, -.greatestFiniteMagnitude]))
    }

    /// A NaN weight is refused by tensor name when the model loads, not turned into NaN logits.
    @Test func nonFiniteWeightIsRefusedByName() throws {
        let c = try GoldenCase(folder: GoldenForwardTests.root.appendingPathComponent("nope_lambda").path)
        var p = try c.parameters()
        p.layers[1].wq[5] = Float.nan
        #expect(throws: WeightError.nonFinite(source: "in-memory parameters", tensor: "model.layers.1.self_attn.q_proj.weight", count: 1)) {
            _ = try LlamaModel(store: ParameterStore(p), config: c.config, policy: .resident)
        }
    }

    @Test func fastExpIsAccurate() {
        var worst: Float = 0
        var x: Float = -87
        while x < 88 {
            let rel = abs(FastMath.exp(x) - Foundation.exp(x)) / Foundation.exp(x)
            worst = max(worst, rel)
            x += 0.0137
        }
        print("fast exp worst relative error \(worst)")
        #expect(worst < 3e-7)
        #expect(FastMath.exp(-100) == 0 && FastMath.exp(0) == 1)
    }
}
