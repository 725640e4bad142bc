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

    public enum Format: String, Sendable { case text, jsonl, tokens }

    public init(tokens: [Int], heldOut: [Int], bos: Int?, description: String) {
        self.tokens = tokens
        self.heldOut = heldOut
        self.bos = bos
        self.description = description
    }

    /// Reads `path`: plain UTF-8 text, JSONL with a `text` field per line (documents joined by
    /// EOS where the tokenizer has one), or a token file (JSON array or raw little-endian
    /// uint32; `.tokens`, `.bin` or `.json`). The last `heldOutFraction` of the tokens is held out.
    public static func load(_ path: String, tokenizer: Tokenizer?, bos: Int?, heldOutFraction: Double = 0.1) throws -> CalibrationData {
        let format = Self.format(of: path)
        var ids: [Int] = []
        switch format {
        case .tokens:
            ids = try TokenFile.read(path)
        case .text, .jsonl:
            guard let tokenizer else { throw SearchError.badData(file: path, detail: "the model has no tokenizer; give a token file") }
            guard let data = FileManager.default.contents(atPath: path) else { throw SearchError.badData(file: path, detail: "cannot read") }
            guard let text = String(data: data, encoding: .utf8) else { throw SearchError.badData(file: path, detail: "not UTF-8 text") }
            if format == .text {
                ids = tokenizer.encode(text, addSpecialTokens: false)
            } else {
                for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
                    guard let json = try? JSONReader.parse(String(line)), let body = json["text"]?.stringValue else {
                        throw SearchError.badData(file: path, detail: "line \(n + 1) is not a JSON object with a \"text\" string")
                    }
                    ids += tokenizer.encode(body, addSpecialTokens: false)
                    if let eos = tokenizer.eosID { ids.append(eos) }
                }
            }
        }
        guard ids.count >= 64 else { throw SearchError.badData(file: path, detail: "only \(ids.count) tokens; the search needs at least a few target-length windows") }
        let split = Int(Double(ids.count) * (1 - heldOutFraction))
        return CalibrationData(tokens: Array(ids[..<split]), heldOut: Array(ids[split...]), bos: bos,
                               description: "\((path as NSString).lastPathComponent) (\(format.rawValue), \(ids.count) tokens, \(ids.count - split) held out)")
    }

    static func format(of path: String) -> Format {
        let ext = (path as NSString).pathExtension.lowercased()
        if ext == "jsonl" { return .jsonl }
        if ["tokens", "bin", "json", "u32"].contains(ext) { return .tokens }
        return .text
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

/// A small deterministic generator (splitmix64) whose state is one number, so a search can
/// save and resume it exactly.
public struct SearchRandom: Sendable, Equatable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    public mutating func int(_ n: Int) -> Int { Int(next() % UInt64(max(1, n))) }
}

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
