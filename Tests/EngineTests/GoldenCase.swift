import Checkpoints
import Foundation
@testable import Engine

/// One reference case: an HF folder (config.json, model.safetensors) with a golden.safetensors
/// holding `input_ids` [B, T] and `lambda` [L, H] (scripts/reference/make_*_goldens.py).
struct GoldenCase {
    let checkpoint: Checkpoint
    let config: ModelConfig
    let golden: SafetensorsFile
    let tokens: [[Int]]
    let lambda: [[Float]]

    init(folder: String) throws {
        checkpoint = try Checkpoint.open(folder)
        config = try checkpoint.requireConfig()
        golden = try SafetensorsFile(path: folder + "/golden.safetensors")
        let ids = try golden.readF32("input_ids").map { Int($0) }
        let T = try golden.info("input_ids").shape[1]
        tokens = (0..<(ids.count / T)).map { Array(ids[($0 * T)..<(($0 + 1) * T)]) }
        let flat = try golden.readF32("lambda")
        let H = config.heads
        lambda = (0..<config.layers).map { Array(flat[($0 * H)..<(($0 + 1) * H)]) }
    }

    func parameters() throws -> Parameters { try Parameters(store: checkpoint.store, config: config) }
}
