import Checkpoints
import Engine
import Foundation
import Testing
@testable import TemperatureSearch

/// The searches on the bundled NoPE organism (4 layers, 6 heads, trained at 256 tokens) with
/// calibration text from its own corpus generator's grammar.
@Suite(.serialized) struct SearchTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let organism = root.appendingPathComponent("fixtures/organism").path

    /// A problem at `target` tokens on byte-level tokens of a repeated text (BOS 256).
    static func problem(target: Int, granularity: SearchProblem.Granularity = .head, layers: [Int] = [0, 1, 2, 3]) throws -> SearchProblem {
        let checkpoint = try Checkpoint.open(organism)
        let config = try checkpoint.requireConfig()
        var text = ""
        var n = 0
        while text.utf8.count < 40 * target {
            text += "The pass key is \(10000 + (n * 7919) % 90000). The grass is green. The sky is blue. Here we go. There and back again. "
            n += 1
        }
        let ids = text.utf8.map(Int.init)
        let split = ids.count * 3 / 4
        let data = CalibrationData(tokens: Array(ids[..<split]), heldOut: Array(ids[split...]), bos: 256, description: "test text")
        let model = try LlamaModel(store: checkpoint.store, config: config, policy: .resident)
        return try SearchProblem(model: model, data: data, searchedLayers: layers, granularity: granularity,
                                 targetLength: target, trainingLength: 256, evalSequences: 2)
    }

    @Test func calibrationWindowsStartWithBOS() throws {
        let data = CalibrationData(tokens: Array(0..<100), heldOut: Array(100..<150), bos: 999, description: "d")
        var rng = SearchRandom(seed: 1)
        let w = try data.trainingWindow(length: 10, &rng)
        #expect(w.count == 10 && w[0] == 999 && w[2] == w[1] + 1)
        let held = try data.heldOutWindows(length: 20, count: 5)
        #expect(held.count == 2 && held[1] == [999] + Array(120..<139))
        #expect(throws: SearchError.self) { try data.heldOutWindows(length: 60, count: 1) }
    }

    @Test func goldenSectionFindsTheMinimum() {
        var calls = 0
        let r = GoldenSection.minimize(low: 1, high: 3, tolerance: 0.001) { x in calls += 1; return Double((x - 1.737) * (x - 1.737)) + 2 }
        #expect(abs(r.x - 1.737) < 0.001 && abs(r.value - 2) < 1e-6)
        #expect(calls < 25)
    }

    /// A tied layer's gradient is the sum of its heads' gradients; scales expand as documented.
    @Test func granularityTiesHeads() throws {
        let head = try Self.problem(target: 96, layers: [1, 3]), layer = try Self.problem(target: 96, granularity: .layer, layers: [1, 3])
        #expect(layer.count == 2 && head.count == 12)
        #expect(layer.scales([1.5, 2])[0] == [1, 1, 1, 1, 1, 1] && layer.scales([1.5, 2])[3] == [2, 2, 2, 2, 2, 2])
        #expect(layer.tableRows([1.5, 2])[0] == nil && layer.tableRows([1.5, 2])[1] == [1.5, 1.5, 1.5, 1.5, 1.5, 1.5])
        let sequence = try head.data.heldOutWindows(length: 96, count: 1)[0]
        let perHead = try head.lossAndGradient(head.uniform(1.3), sequence: sequence)
        let tied = try layer.lossAndGradient(layer.uniform(1.3), sequence: sequence)
        // the same scales: the same loss up to OpenBLAS's alignment-dependent summation order
        #expect(abs(perHead.loss - tied.loss) <= 1e-6 * tied.loss)
        for (i, l) in [1, 3].enumerated() {
            let sum = perHead.gradient[(i * 6)..<(i * 6 + 6)].reduce(0, +)
            #expect(abs(sum - tied.gradient[i]) <= 1e-5 * max(1, abs(sum)), "layer \(l)")
        }
    }

    /// Two steps, saved and loaded, then two more: the same bits as four steps in one run.
    @Test func resumeIsBitIdentical() throws {
        let p = try Self.problem(target: 128)
        var settings = HeadScaleSearch.Settings()
        settings.steps = 4; settings.batch = 2; settings.checkpointEvery = 2; settings.learningRate = 0.2
        let search = try HeadScaleSearch(problem: p, settings: settings)
        let straight = try search.run(from: search.initialState(p.uniform(1.6)))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nopekit-resume-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("state.json").path
        // stop after step 2 (the state file is written there), then continue from the file
        let partial = try search.runSteps(from: search.initialState(p.uniform(1.6)), count: 2, statePath: path)
        let loaded = try HeadScaleSearch.load(path, settings: settings, count: p.count)
        #expect(loaded == partial)
        let resumed = try search.run(from: loaded)
        #expect(resumed.scales.map(\.bitPattern) == straight.scales.map(\.bitPattern))
        #expect(resumed.m == straight.m && resumed.v == straight.v && resumed.rng == straight.rng)
        #expect(straight.scales.allSatisfy { $0 >= settings.minScale })
        var other = settings
        other.seed = 1
        #expect(throws: SearchError.self) { try HeadScaleSearch.load(path, settings: other, count: p.count) }
    }

    /// At the training length the entropy target is the model itself: every head keeps s ≈ 1.
    @Test func entropyMatchingAtTheTrainingLengthKeepsOne() throws {
        let p = try Self.problem(target: 256, layers: [3])
        let s = try EntropySearch.run(p, iterations: 9)
        #expect(s.allSatisfy { abs($0 - 1) < 0.01 }, "\(s)")
    }

    /// At 4× the training length the organism's loss rises; headscale steps lower it.
    @Test func headscaleLowersTheLossBeyondTheTrainingLength() throws {
        let p = try Self.problem(target: 1024, layers: [0, 1, 2, 3])
        var settings = HeadScaleSearch.Settings()
        settings.steps = 4; settings.batch = 1; settings.learningRate = 0.3; settings.warmupFraction = 0
        let before = try p.heldOutLoss(p.uniform(1), length: 1024)
        let search = try HeadScaleSearch(problem: p, settings: settings)
        let state = try search.run(from: search.initialState(p.uniform(1)))
        let after = try p.heldOutLoss(state.scales, length: 1024)
        #expect(after < before - 0.05, "held-out loss \(before) → \(after)")
    }
}
