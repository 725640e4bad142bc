import Checkpoints
import Engine
import Foundation
import Tokenizers

/// The text a search calibrates on: read, tokenized with the model's tokenizer, cut into a
/// training stream (random windows) and a held-out stream (fixed windows for the loss report).
///
/// Every sequence starts with BOS where the model has one: a model that always saw BOS at
/// position 0 is several times worse on windows that start without it.
public struct CalibrationData: Sendable {
    public let tokens: [Int]              // the training stream
    public let heldOut: [Int]             // the held-out stream
    public let bos: Int?
    /// What was read, for the table: file, format, token counts.
    public let description: String

    public init(tokens: [Int], heldOut: [Int], bos: Int?, description: String) {
        self.tokens = tokens
        self.heldOut = heldOut
        self.bos = bos
        self.description = description
    }

    /// Reads `path` (text, JSONL or a token file: `TokenStream`); the last `heldOutFraction`
    /// of the tokens is held out.
    public static func load(_ path: String, tokenizer: Tokenizer?, bos: Int?, heldOutFraction: Double = 0.1) throws -> CalibrationData {
        let (ids, format) = try TokenStream.read(path, tokenizer: tokenizer)
        guard ids.count >= 64 else { throw SearchError.badData(file: path, detail: "only \(ids.count) tokens; the search needs at least a few target-length windows") }
        let split = Int(Double(ids.count) * (1 - heldOutFraction))
        return CalibrationData(tokens: Array(ids[..<split]), heldOut: Array(ids[split...]), bos: bos,
                               description: "\((path as NSString).lastPathComponent) (\(format.rawValue), \(ids.count) tokens, \(ids.count - split) held out)")
    }

    /// One window of `length` tokens from `stream` starting at `start` (BOS first, if any).
    func window(_ stream: [Int], at start: Int, length: Int) -> [Int] {
        guard let bos else { return Array(stream[start..<(start + length)]) }
        return [bos] + stream[start..<(start + length - 1)]
    }

    /// The training window drawn by `rng` (uniform start).
    public func trainingWindow(length: Int, _ rng: inout SearchRandom) throws -> [Int] {
        guard tokens.count >= length else {
            throw SearchError.badData(file: description, detail: "\(tokens.count) training tokens is less than one window of \(length)")
        }
        return window(tokens, at: rng.int(tokens.count - length + 1), length: length)
    }

    /// Up to `count` non-overlapping held-out windows of `length` (fewer if the stream is short).
    public func heldOutWindows(length: Int, count: Int) throws -> [[Int]] {
        let available = heldOut.count / length
        guard available >= 1 else {
            throw SearchError.badData(file: description, detail: "the held-out part has \(heldOut.count) tokens, less than one window of \(length); give more data")
        }
        return (0..<min(count, available)).map { window(heldOut, at: $0 * length, length: length) }
    }
}

/// The search's generator: SplitMix64, whose state is one number, so a search can save and
/// resume it exactly.
public typealias SearchRandom = SplitMix64

public enum SearchError: Error, CustomStringConvertible, Equatable {
    case badData(file: String, detail: String)
    case badSettings(String)
    case badState(file: String, detail: String)

    public var description: String {
        switch self {
        case .badData(let f, let d): return "\(f): \(d)"
        case .badSettings(let d): return "search settings: \(d)"
        case .badState(let f, let d): return "\(f): cannot resume: \(d)"
        }
    }
}
