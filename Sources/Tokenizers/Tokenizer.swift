import Checkpoints
import Foundation

/// A model's tokenizer: text ↔ token ids, read from a Hugging Face `tokenizer.json` (BPE
/// models, SentencePiece-style or byte-level) or from a GGUF vocabulary (`llama` scores or
/// `gpt2` merges), so every checkpoint nopekit reads is self-contained.
///
/// The pipeline is HF tokenizers': added tokens are split out of the raw text first; every
/// other segment is normalised, pre-tokenized into words and BPE-encoded; the post-processor
/// adds BOS/EOS. Decoding runs the decoder chain over the pieces.
public final class Tokenizer {
    public enum Kind: String, Sendable { case sentencePieceBPE = "sentencepiece-bpe", byteLevelBPE = "byte-level-bpe", ggufLlama = "gguf-llama", ggufGPT2 = "gguf-gpt2" }

    public let kind: Kind
    public let source: String
    let model: BPEModel?
    let sentencePiece: SentencePieceModel?
    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?
    let decoder: Decoder?
    let added: AddedTokens
    /// Ids the post-processor puts before and after the sequence.
    let prefix: [Int], suffix: [Int]
    /// llama.cpp SPM: prepend a space to the text (and after a special token).
    let addSpacePrefix: Bool
    public let bosID: Int?
    public let eosID: Int?
    let idToPiece: [String]

    init(kind: Kind, source: String, model: BPEModel?, sentencePiece: SentencePieceModel?, normalizer: Normalizer?,
         preTokenizer: PreTokenizer?, decoder: Decoder?, added: AddedTokens, prefix: [Int], suffix: [Int],
         addSpacePrefix: Bool, bosID: Int?, eosID: Int?, idToPiece: [String]) {
        self.kind = kind
        self.source = source
        self.model = model
        self.sentencePiece = sentencePiece
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.decoder = decoder
        self.added = added
        self.prefix = prefix
        self.suffix = suffix
        self.addSpacePrefix = addSpacePrefix
        self.bosID = bosID
        self.eosID = eosID
        self.idToPiece = idToPiece
    }

    public var vocabularySize: Int { idToPiece.count }

    /// The piece of `id` (the vocabulary string, e.g. `▁the`, `Ġthe`, `<0x0A>`).
    public func piece(_ id: Int) -> String? { idToPiece.indices.contains(id) ? idToPiece[id] : nil }

    /// Token ids of `text`. `addSpecialTokens` adds what the post-processor adds (BOS…);
    /// `parseSpecial` matches special tokens written in the text (HF's default; llama.cpp's
    /// `parse_special`). Without it, only non-special added tokens are matched and `<s>` in
    /// the text is ordinary text (HF `encode_special_tokens`, sentencepiece's behaviour).
    public func encode(_ text: String, addSpecialTokens: Bool = true, parseSpecial: Bool = true) -> [Int] {
        var ids: [Int] = addSpecialTokens ? prefix : []
        var previousWasAdded = true
        for segment in added.split(text, includingSpecial: parseSpecial) {
            switch segment {
            case .token(let id):
                ids.append(id)
                previousWasAdded = true
            case .text(let range):
                let raw = String(text.unicodeScalars[range])
                if let sp = sentencePiece {
                    // llama.cpp: a space before the text (at the start and after a special token),
                    // then every space escaped to ▁.
                    let spaced = (addSpacePrefix && previousWasAdded ? " " : "") + raw
                    ids += sp.encode(spaced.replacingScalars(" ", with: "▁"))
                } else if let model {
                    let normalized = normalizer.map { $0.apply(String(raw)) } ?? String(raw)
                    let words = preTokenizer?.apply([normalized], isFirst: range.lowerBound == text.startIndex) ?? [normalized]
                    for w in words where !w.isEmpty { ids += model.encode(w) }
                }
                previousWasAdded = false
            }
        }
        if addSpecialTokens { ids += suffix }
        return ids
    }

    /// Pieces of `ids` (for display).
    public func pieces(_ ids: [Int]) -> [String] { ids.map { piece($0) ?? "<\($0)?>" } }

    /// Text of `ids`; `skipSpecialTokens` drops BOS/EOS and other special tokens.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        let kept = ids.filter { id in !(skipSpecialTokens && added.isSpecial(id)) && piece(id) != nil }
        let pieces = kept.map { idToPiece[$0] }
        guard let decoder else { return pieces.joined(separator: " ") }
        return decoder.apply(pieces).joined()
    }
}
