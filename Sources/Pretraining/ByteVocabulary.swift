import Checkpoints
import Foundation
import Tokenizers

/// The byte-level vocabulary of the model organisms: ids 0…255 are the bytes, 256 is BOS `<s>`,
/// 257 is EOS `</s>`. Written as a standard HF `tokenizer.json` (ByteLevel pre-tokenizer and
/// decoder, no merges, a post-processor that adds BOS), so PyPI `tokenizers` loads it too.
public enum ByteVocabulary {
    public static let size = 258
    public static let bos = 256
    public static let eos = 257

    public static func ids(_ text: String) -> [Int] { text.utf8.map(Int.init) }

    /// The tokenizer.json text.
    public static var tokenizerJSON: String {
        var vocab: [JSONMember] = []
        for b in 0..<256 { vocab.append(JSONMember(byteLevelCharacter(b), .int(b))) }
        vocab.append(JSONMember("<s>", .int(bos)))
        vocab.append(JSONMember("</s>", .int(eos)))
        let special: (String, Int) -> JSONValue = { content, id in
            .object([JSONMember("id", .int(id)), JSONMember("content", .string(content)), JSONMember("single_word", .bool(false)),
                     JSONMember("lstrip", .bool(false)), JSONMember("rstrip", .bool(false)), JSONMember("normalized", .bool(false)),
                     JSONMember("special", .bool(true))])
        }
        let json = JSONValue.object([
            JSONMember("version", .string("1.0")),
            JSONMember("truncation", .null), JSONMember("padding", .null),
            JSONMember("added_tokens", .array([special("<s>", bos), special("</s>", eos)])),
            JSONMember("normalizer", .null),
            JSONMember("pre_tokenizer", .object([JSONMember("type", .string("ByteLevel")), JSONMember("add_prefix_space", .bool(false)),
                                                 JSONMember("trim_offsets", .bool(true)), JSONMember("use_regex", .bool(false))])),
            JSONMember("post_processor", .object([
                JSONMember("type", .string("TemplateProcessing")),
                JSONMember("single", .array([.object([JSONMember("SpecialToken", .object([JSONMember("id", .string("<s>")), JSONMember("type_id", .int(0))]))]),
                                             .object([JSONMember("Sequence", .object([JSONMember("id", .string("A")), JSONMember("type_id", .int(0))]))])])),
                JSONMember("pair", .array([.object([JSONMember("SpecialToken", .object([JSONMember("id", .string("<s>")), JSONMember("type_id", .int(0))]))]),
                                           .object([JSONMember("Sequence", .object([JSONMember("id", .string("A")), JSONMember("type_id", .int(0))]))]),
                                           .object([JSONMember("Sequence", .object([JSONMember("id", .string("B")), JSONMember("type_id", .int(1))]))])])),
                JSONMember("special_tokens", .object([JSONMember("<s>", .object([JSONMember("id", .string("<s>")), JSONMember("ids", .array([.int(bos)])),
                                                                                 JSONMember("tokens", .array([.string("<s>")]))]))])),
            ])),
            JSONMember("decoder", .object([JSONMember("type", .string("ByteLevel")), JSONMember("add_prefix_space", .bool(false)),
                                           JSONMember("trim_offsets", .bool(true)), JSONMember("use_regex", .bool(false))])),
            JSONMember("model", .object([JSONMember("type", .string("BPE")), JSONMember("dropout", .null), JSONMember("unk_token", .null),
                                         JSONMember("continuing_subword_prefix", .null), JSONMember("end_of_word_suffix", .null),
                                         JSONMember("fuse_unk", .bool(false)), JSONMember("byte_fallback", .bool(false)),
                                         JSONMember("ignore_merges", .bool(false)),
                                         JSONMember("vocab", .object(vocab)), JSONMember("merges", .array([]))])),
        ])
        return JSONWriter.pretty(json, sortKeys: false) + "\n"
    }

    public static let tokenizerConfigJSON = """
    {
      "add_bos_token": true,
      "add_eos_token": false,
      "bos_token": "<s>",
      "eos_token": "</s>",
      "model_max_length": 1000000000000000019884624838656,
      "tokenizer_class": "PreTrainedTokenizerFast"
    }

    """

    /// GPT-2's stand-in character of byte `b`.
    static func byteLevelCharacter(_ b: Int) -> String {
        let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
        if printable { return String(Unicode.Scalar(UInt8(b))) }
        var n = 0
        for x in 0..<b {
            let p = (0x21...0x7E).contains(x) || (0xA1...0xAC).contains(x) || (0xAE...0xFF).contains(x)
            if !p { n += 1 }
        }
        return String(Unicode.Scalar(UInt32(256 + n))!)
    }
}
