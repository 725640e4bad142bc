import Checkpoints
import Foundation

/// The wording of a passkey retrieval prompt:
///
///     task + filler… + needle(key) + filler… + question      → the model should continue with answer_prefix + key
///
/// Pieces are joined with nothing between them (spacing belongs to the strings). The filler is
/// a pool: each slot draws one piece. The default is the HeadScale paper's wording (LongLoRA's
/// `passkey_retrivial.py`); a model trained on other text ships its own as
/// `passkey_prompt.json` in its folder (the bundled organism does), or `--passkey-prompt FILE`
/// names one.
public struct PasskeyTemplate: Equatable, Sendable {
    public var task: String
    public var filler: [String]
    /// Contains `{key}` wherever the key's digits go.
    public var needle: String
    public var question: String
    public var answerPrefix: String

    public init(task: String, filler: [String], needle: String, question: String, answerPrefix: String = " ") {
        self.task = task; self.filler = filler; self.needle = needle; self.question = question; self.answerPrefix = answerPrefix
    }

    /// The name of a model's own template file, next to its config.json.
    public static let fileName = "passkey_prompt.json"

    /// The HeadScale paper's prompt (run_pass.py).
    public static let paper = PasskeyTemplate(
        task: "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz you about the important information there.",
        filler: [" The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."],
        needle: "\nThe pass key is {key}. Remember it. {key} is the pass key.\n",
        question: "\nWhat is the pass key? The pass key is")

    public func needle(key: Int) -> String { needle.replacingOccurrences(of: "{key}", with: String(key)) }

    public var json: JSONValue {
        .object([JSONMember("task", .string(task)), JSONMember("filler", .array(filler.map { .string($0) })),
                 JSONMember("needle", .string(needle)), JSONMember("question", .string(question)),
                 JSONMember("answer_prefix", .string(answerPrefix))])
    }

    public init(json j: JSONValue, file: String) throws {
        func string(_ key: String) throws -> String {
            guard let s = j[key]?.stringValue else { throw VerificationError.badTemplate(file: file, reason: "\"\(key)\" is missing or not a string") }
            return s
        }
        guard let pool = j["filler"]?.arrayValue, !pool.isEmpty else {
            throw VerificationError.badTemplate(file: file, reason: "\"filler\" must be a non-empty list of strings")
        }
        let filler = try pool.map { v -> String in
            guard let s = v.stringValue, !s.isEmpty else { throw VerificationError.badTemplate(file: file, reason: "\"filler\" holds a non-string or empty entry") }
            return s
        }
        self.init(task: try string("task"), filler: filler, needle: try string("needle"), question: try string("question"),
                  answerPrefix: try string("answer_prefix"))
        guard needle.contains("{key}") else { throw VerificationError.badTemplate(file: file, reason: "the needle has no {key}") }
    }

    public static func load(_ path: String) throws -> PasskeyTemplate {
        let data: [UInt8]
        do { data = try SmallFile.read(path) } catch {
            throw VerificationError.badTemplate(file: path, reason: "cannot be read: \(error)")
        }
        let json: JSONValue
        do { json = try JSONReader.parse(data) } catch {
            throw VerificationError.badTemplate(file: path, reason: "not JSON: \(error)")
        }
        return try PasskeyTemplate(json: json, file: path)
    }

    /// The template for a model: `explicit` if given, else the model folder's own file, else
    /// the paper's. Returns where it came from, for the report.
    public static func resolve(explicit: String?, modelFolder: String?) throws -> (template: PasskeyTemplate, source: String) {
        if let explicit { return (try load(explicit), explicit) }
        if let folder = modelFolder {
            let own = (folder as NSString).appendingPathComponent(fileName)
            if FileManager.default.fileExists(atPath: own) { return (try load(own), own) }
        }
        return (paper, "the HeadScale paper's prompt")
    }
}
