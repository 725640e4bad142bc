import Checkpoints
import FuzzSupport
import Tokenizers

/// A tokenizer.json: model, vocabulary, merges, normalizer, pre-tokenizer (Split regexes
/// included), added tokens; then an encode and decode round of a mixed text.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTokenizer(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let json = FuzzInput.text(FuzzInput.bytes(start, count))
    if let tokenizer = try? Tokenizer.load(tokenizerJSON: json, config: nil, name: "fuzz input") {
        let ids = tokenizer.encode("Hello wörld, 123 <s> \u{1F600}\n\tthe pass key is 48213.")
        _ = tokenizer.decode(ids)
        _ = tokenizer.decode([0, 1, 2, tokenizer.vocabularySize - 1, tokenizer.vocabularySize, -1])
    }
    return 0
}
