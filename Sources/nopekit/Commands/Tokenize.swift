import ArgumentParser
import Checkpoints
import Foundation
import Tokenizers

/// `nopekit tokenize`: the model's own tokenization of a text, for checking a model by hand.
struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the token ids and pieces a model's tokenizer gives a text.",
        discussion: "MODEL is a Hugging Face folder (a folder holding only the tokenizer files is enough), a tokenizer.json, or a GGUF file with a vocabulary.")

    @Argument(help: "Model folder, tokenizer.json or .gguf file.")
    var model: String

    @Argument(help: "The text to tokenize.")
    var text: String

    @Flag(name: .long, help: "Leave out the special tokens the tokenizer adds (BOS/EOS).")
    var noSpecialTokens = false

    @OptionGroup var output: OutputOptions
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        let tokenizer = try Tokenizer.load(model)
        let ids = tokenizer.encode(text, addSpecialTokens: !noSpecialTokens)
        let pieces = tokenizer.pieces(ids)
        if output.json {
            let json = JSONValue.object([
                JSONMember("ids", .array(ids.map { .int($0) })),
                JSONMember("pieces", .array(pieces.map { .string($0) })),
            ])
            Terminal.output(JSONWriter.compact(json))
            return
        }
        let rows = zip(ids, pieces).map { [String($0), Terminal.printable($1)] }
        Terminal.output("\(ids.count) tokens (\(tokenizer.kind.rawValue), vocabulary \(tokenizer.vocabularySize))\n"
            + Terminal.table(rows, header: ["id", "piece"], rightAligned: [0]))
    }
}
