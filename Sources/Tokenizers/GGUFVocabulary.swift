import Checkpoints
import Foundation

/// A vocabulary as llama.cpp keeps it in GGUF metadata (`tokenizer.ggml.*`, formats.md §3.5),
/// and the two ways across: from a Hugging Face `tokenizer.json` (HF folder → GGUF) and back
/// to a `tokenizer.json` (GGUF → HF folder).
///
/// Two kinds exist, as in llama.cpp's converter:
/// - `gpt2`: byte-level BPE. Tokens are the vocabulary strings by id, merges are `"a b"` in
///   rank order, and `pre` names llama.cpp's pre-tokenizer regex.
/// - `llama`: SentencePiece. llama.cpp merges the adjacent pair whose concatenation has the
///   highest *score*, so a BPE `tokenizer.json` (Llama 2 / TinyLlama style: `byte_fallback`,
///   `▁` for spaces) gets scores from its merge ranks: the token made by merge r scores −r,
///   which makes llama.cpp merge in the order BPE does. Going back, merges are rebuilt from
///   the scores as transformers' SentencePiece converter does.
public struct GGUFVocabulary: Equatable, Sendable {
    public enum Model: String, Sendable { case gpt2, llama }

    /// llama.cpp's token types (`tokenizer.ggml.token_type`).
    public enum TokenType: Int32, Sendable {
        case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    public var model: Model
    /// `tokenizer.ggml.pre`: `default`, `gpt-2` or `llama-bpe` (the ones nopekit also reads).
    public var pre: String
    public var tokens: [String]
    public var types: [TokenType]
    /// SentencePiece scores (`llama` only).
    public var scores: [Float]
    /// `"left right"` in rank order (`gpt2` only).
    public var merges: [String]
    public var bos: Int?, eos: Int?, unknown: Int?, padding: Int?
    public var addBOS: Bool, addEOS: Bool
    /// llama.cpp SPM: a space before the text (`llama` only).
    public var addSpacePrefix: Bool
    public var chatTemplate: String?
    /// What a user should know about the translation (e.g. a pre-tokenizer llama.cpp lacks).
    public var notes: [String] = []

    /// Score given to tokens no merge produces, and to added tokens (llama.cpp's converter
    /// gives added tokens −1000; a piece BPE never builds must lose to every merge).
    static let unmergedScore: Float = -1e9
    static let addedScore: Float = -1000
}

// MARK: - Hugging Face tokenizer.json → GGUF

extension GGUFVocabulary {
    /// The vocabulary of the tokenizer in `folder` (`tokenizer.json`, `tokenizer_config.json`),
    /// padded with `[PAD{i}]` (type unused) up to `vocabSize`, the model's embedding rows.
    /// `fallbackBOS`/`fallbackEOS` come from `config.json` when the tokenizer names none.
    public static func fromHuggingFace(folder: String, vocabSize: Int, fallbackBOS: Int?, fallbackEOS: Int?) throws -> GGUFVocabulary {
        let jsonPath = (folder as NSString).appendingPathComponent("tokenizer.json")
        let tokenizer = try Tokenizer.load(folder)
        let json = try Tokenizer.readJSON(jsonPath)
        let configPath = (folder as NSString).appendingPathComponent("tokenizer_config.json")
        let config = FileManager.default.fileExists(atPath: configPath) ? try Tokenizer.readJSON(configPath) : nil
        guard let bpe = tokenizer.model else {
            throw TokenizerError.unsupported(file: jsonPath, component: "this tokenizer", detail: "only BPE tokenizers convert to GGUF")
        }
        guard tokenizer.vocabularySize <= vocabSize else {
            throw TokenizerError.invalid(file: jsonPath, detail: "\(tokenizer.vocabularySize) tokens, but the model's embedding has only \(vocabSize) rows")
        }
        let added = Dictionary(tokenizer.added.tokens.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var tokens: [String] = [], types: [TokenType] = []
        for id in 0..<vocabSize {
            let piece = tokenizer.piece(id) ?? ""
            if piece.isEmpty {
                tokens.append("[PAD\(id)]")
                types.append(.unused)
            } else {
                tokens.append(piece)
                types.append(added[id].map { $0.special ? .control : .userDefined } ?? .normal)
            }
        }
        let orderedMerges = bpe.merges.sorted { $0.value.rank < $1.value.rank }
        func id(_ value: JSONValue?) -> Int? {
            guard let name = value?.stringValue ?? value?["content"]?.stringValue else { return nil }
            return tokenizer.added.tokens.first { $0.content.unicodeScalars.elementsEqual(name.unicodeScalars) }?.id ?? bpe.vocab[ExactKey(name)]
        }
        var vocabulary = GGUFVocabulary(
            model: .gpt2, pre: "default", tokens: tokens, types: types, scores: [], merges: [],
            bos: tokenizer.bosID ?? fallbackBOS, eos: tokenizer.eosID ?? fallbackEOS,
            unknown: bpe.unknownID, padding: id(config?["pad_token"]),
            addBOS: !tokenizer.prefix.isEmpty, addEOS: !tokenizer.suffix.isEmpty,
            addSpacePrefix: false, chatTemplate: config?["chat_template"]?.stringValue)
        switch tokenizer.kind {
        case .byteLevelBPE:
            vocabulary.merges = orderedMerges.map { bpe.idToToken[$0.key.a] + " " + bpe.idToToken[$0.key.b] }
            (vocabulary.pre, vocabulary.notes) = preName(json["pre_tokenizer"], hasMerges: !orderedMerges.isEmpty)
        case .sentencePieceBPE:
            guard bpe.byteFallback else {
                throw TokenizerError.unsupported(file: jsonPath, component: "a BPE tokenizer without byte-level pre-tokenization or byte_fallback",
                                                 detail: "llama.cpp has no vocabulary type for it")
            }
            vocabulary.model = .llama
            var scores = [Float](repeating: unmergedScore, count: vocabSize)
            for (rank, merge) in orderedMerges.enumerated().reversed() { scores[merge.value.id] = -Float(rank) }
            for id in 0..<vocabSize {
                let piece = tokens[id]
                if types[id] != .normal {
                    scores[id] = addedScore
                } else if piece.unicodeScalars.count == 1 {
                    scores[id] = 0  // a character is a starting symbol, never a merge result
                } else if piece.utf8.count == 6, piece.hasPrefix("<0x"), piece.hasSuffix(">") {
                    vocabulary.types[id] = .byte
                    scores[id] = 0
                }
            }
            if let unk = bpe.unknownID, unk < vocabSize { vocabulary.types[unk] = .unknown; scores[unk] = 0 }
            vocabulary.scores = scores
            vocabulary.addSpacePrefix = prependsSpace(json)
            if vocabulary.addSpacePrefix && !normalizerPrepends(json["normalizer"]) {
                vocabulary.notes.append("this tokenizer's Metaspace prepends ▁ by its own rule (not before a text that starts with a space or ▁, its own choice beside special tokens); llama.cpp always prepends one at the start and after a special token, so such texts tokenize differently")
            }
        default:
            throw TokenizerError.unsupported(file: jsonPath, component: "tokenizer kind \(tokenizer.kind.rawValue)", detail: "not convertible")
        }
        let stripping = tokenizer.added.tokens.filter { $0.lstrip || $0.rstrip }.map(\.content)
        if !stripping.isEmpty {
            vocabulary.notes.append("added tokens \(stripping.joined(separator: ", ")) absorb the spaces beside them (lstrip/rstrip); GGUF has no field for that, so llama.cpp keeps those spaces as tokens")
        }
        return vocabulary
    }

    /// Whether a SentencePiece-style tokenizer.json puts `▁` before the text (a `Prepend`
    /// normaliser, or a Metaspace pre-tokenizer that prepends).
    static func prependsSpace(_ json: JSONValue) -> Bool {
        func metaspacePrepends(_ p: JSONValue?) -> Bool {
            guard let p, !p.isNull else { return false }
            if p["type"]?.stringValue == "Metaspace" {
                if let scheme = p["prepend_scheme"]?.stringValue { return scheme != "never" }
                return p["add_prefix_space"]?.boolValue ?? true
            }
            return (p["pretokenizers"]?.arrayValue ?? []).contains { metaspacePrepends($0) }
        }
        return normalizerPrepends(json["normalizer"]) || metaspacePrepends(json["pre_tokenizer"])
    }

    /// Whether a normaliser prepends `▁` unconditionally, as llama.cpp's add_space_prefix does.
    static func normalizerPrepends(_ n: JSONValue?) -> Bool {
        guard let n, !n.isNull else { return false }
        if n["type"]?.stringValue == "Prepend" { return true }
        return (n["normalizers"]?.arrayValue ?? []).contains { normalizerPrepends($0) }
    }

    /// llama.cpp's name for a byte-level pre-tokenizer: `gpt-2` for ByteLevel's own regex,
    /// `llama-bpe` for Llama 3's Split regex; without merges the split cannot change a single
    /// id, so `default` is exact; anything else also gets `default`, with a note.
    static func preName(_ pre: JSONValue?, hasMerges: Bool) -> (String, [String]) {
        var regexes: [String] = []
        var byteLevelRegex = false
        func walk(_ p: JSONValue?) {
            guard let p, !p.isNull else { return }
            switch p["type"]?.stringValue {
            case "Sequence": (p["pretokenizers"]?.arrayValue ?? []).forEach(walk)
            case "Split": if let r = p["pattern"]?["Regex"]?.stringValue { regexes.append(r) }
            case "ByteLevel": if p["use_regex"]?.boolValue ?? true { byteLevelRegex = true }
            default: break
            }
        }
        walk(pre)
        if regexes.isEmpty && byteLevelRegex { return ("gpt-2", []) }
        if regexes == [Tokenizer.llama3Pattern] && !byteLevelRegex { return ("llama-bpe", []) }
        if regexes == [PreTokenizer.gpt2Pattern] && !byteLevelRegex { return ("gpt-2", []) }
        if !hasMerges { return ("default", []) }
        return ("default", ["llama.cpp has no pre-tokenizer matching this tokenizer.json; written as \"default\", so llama.cpp may split some texts differently"])
    }

    /// The `tokenizer.ggml.*` entries in llama.cpp's converter's order.
    public var metadata: [GGUFKeyValue] {
        var kv: [GGUFKeyValue] = [
            .init("tokenizer.ggml.model", .string(model.rawValue)),
            .init("tokenizer.ggml.pre", .string(pre)),
            .init("tokenizer.ggml.tokens", .array(.string, tokens.map { .string($0) })),
        ]
        if model == .llama { kv.append(.init("tokenizer.ggml.scores", .array(.float32, scores.map { .float32($0) }))) }
        kv.append(.init("tokenizer.ggml.token_type", .array(.int32, types.map { .int32($0.rawValue) })))
        if model == .gpt2 { kv.append(.init("tokenizer.ggml.merges", .array(.string, merges.map { .string($0) }))) }
        for (key, value) in [("bos_token_id", bos), ("eos_token_id", eos), ("unknown_token_id", unknown), ("padding_token_id", padding)] {
            if let value { kv.append(.init("tokenizer.ggml.\(key)", .uint32(UInt32(value)))) }
        }
        kv.append(.init("tokenizer.ggml.add_bos_token", .bool(addBOS)))
        kv.append(.init("tokenizer.ggml.add_eos_token", .bool(addEOS)))
        if model == .llama { kv.append(.init("tokenizer.ggml.add_space_prefix", .bool(addSpacePrefix))) }
        if let chatTemplate { kv.append(.init("tokenizer.chat_template", .string(chatTemplate))) }
        return kv
    }
}

// MARK: - GGUF → Hugging Face tokenizer.json

extension GGUFVocabulary {
    /// The vocabulary of a GGUF file's metadata, or nil when it has none (`tokenizer.ggml.model`
    /// missing or `none`).
    public static func fromGGUF(_ metadata: [GGUFKeyValue], file: String) throws -> GGUFVocabulary? {
        guard let name = metadata["tokenizer.ggml.model"]?.stringValue, name != "none", name != "no_vocab" else { return nil }
        guard let model = Model(rawValue: name) else {
            throw TokenizerError.unsupported(file: file, component: "GGUF vocabulary type \"\(name)\"", detail: "llama (SentencePiece scores) and gpt2 (byte-level BPE) are implemented")
        }
        guard let tokenValues = metadata["tokenizer.ggml.tokens"]?.arrayValue else {
            throw TokenizerError.invalid(file: file, detail: "no tokenizer.ggml.tokens")
        }
        let tokens = tokenValues.map { v -> String in
            if case .bytes(let b) = v { return String(decoding: b, as: UTF8.self) }
            return v.stringValue ?? ""
        }
        let typeValues = metadata["tokenizer.ggml.token_type"]?.arrayValue?.map { $0.intValue ?? 1 } ?? []
        let types = tokens.indices.map { i in typeValues.indices.contains(i) ? TokenType(rawValue: Int32(typeValues[i])) ?? .normal : .normal }
        // Scores may be absent (llama.cpp then scores every piece 0); present, they must cover
        // every token.
        let scores = metadata["tokenizer.ggml.scores"]?.arrayValue?.map { Float($0.doubleValue ?? 0) } ?? []
        if model == .llama && !scores.isEmpty && scores.count != tokens.count {
            throw TokenizerError.invalid(file: file, detail: "tokenizer.ggml.scores has \(scores.count) entries for \(tokens.count) tokens")
        }
        let merges = try (metadata["tokenizer.ggml.merges"]?.arrayValue ?? []).map { v -> String in
            guard let m = v.stringValue, Tokenizer.splitMerge(m) != nil else {
                throw TokenizerError.invalid(file: file, detail: "a tokenizer.ggml.merges entry is not \"a b\"")
            }
            return m
        }
        func id(_ key: String) -> Int? { metadata["tokenizer.ggml.\(key)"]?.intValue }
        return GGUFVocabulary(
            model: model, pre: metadata["tokenizer.ggml.pre"]?.stringValue ?? "default", tokens: tokens, types: types,
            scores: scores, merges: merges,
            bos: id("bos_token_id"), eos: id("eos_token_id"), unknown: id("unknown_token_id"), padding: id("padding_token_id"),
            addBOS: metadata["tokenizer.ggml.add_bos_token"]?.boolValue ?? (model == .llama),
            addEOS: metadata["tokenizer.ggml.add_eos_token"]?.boolValue ?? false,
            addSpacePrefix: metadata["tokenizer.ggml.add_space_prefix"]?.boolValue ?? true,
            chatTemplate: metadata["tokenizer.chat_template"]?.stringValue)
    }

    /// A `tokenizer.json` that tokenizes as llama.cpp does with this vocabulary.
    public func tokenizerJSON() throws -> JSONValue {
        let addedTokens: [JSONValue] = tokens.indices.filter { [.unknown, .control, .userDefined].contains(types[$0]) }.map { i in
            .object([JSONMember("id", .int(i)), JSONMember("content", .string(tokens[i])), JSONMember("single_word", .bool(false)),
                     JSONMember("lstrip", .bool(false)), JSONMember("rstrip", .bool(false)),
                     JSONMember("normalized", .bool(false)), JSONMember("special", .bool(types[i] != .userDefined))])
        }
        var seen = Set<ExactKey>()
        var vocab: [JSONMember] = []
        for (i, t) in tokens.enumerated() where seen.insert(ExactKey(t)).inserted { vocab.append(JSONMember(t, .int(i))) }
        let merged = try mergePairs().map { JSONValue.array([.string($0.0), .string($0.1)]) }
        let normalizer: JSONValue, preTokenizer: JSONValue, decoder: JSONValue
        var modelMembers: [JSONMember] = [JSONMember("type", .string("BPE")), JSONMember("dropout", .null)]
        switch model {
        case .gpt2:
            normalizer = .null
            let byteLevel = { (regex: Bool) -> JSONValue in
                .object([JSONMember("type", .string("ByteLevel")), JSONMember("add_prefix_space", .bool(false)),
                         JSONMember("trim_offsets", .bool(true)), JSONMember("use_regex", .bool(regex))])
            }
            if pre.hasPrefix("llama") {
                preTokenizer = .object([JSONMember("type", .string("Sequence")), JSONMember("pretokenizers", .array([
                    .object([JSONMember("type", .string("Split")), JSONMember("pattern", .object([JSONMember("Regex", .string(Tokenizer.llama3Pattern))])),
                             JSONMember("behavior", .string("Isolated")), JSONMember("invert", .bool(false))]),
                    byteLevel(false),
                ]))])
            } else {
                preTokenizer = byteLevel(true)
            }
            decoder = byteLevel(true)
            modelMembers += [JSONMember("unk_token", .null), JSONMember("continuing_subword_prefix", .null), JSONMember("end_of_word_suffix", .null),
                             JSONMember("fuse_unk", .bool(false)), JSONMember("byte_fallback", .bool(false)),
                             JSONMember("ignore_merges", .bool(pre.hasPrefix("llama")))]
        case .llama:
            let replaceSpace: JSONValue = .object([JSONMember("type", .string("Replace")), JSONMember("pattern", .object([JSONMember("String", .string(" "))])),
                                                   JSONMember("content", .string("▁"))])
            normalizer = addSpacePrefix
                ? .object([JSONMember("type", .string("Sequence")), JSONMember("normalizers", .array([
                    .object([JSONMember("type", .string("Prepend")), JSONMember("prepend", .string("▁"))]), replaceSpace]))])
                : replaceSpace
            preTokenizer = .null
            var chain: [JSONValue] = [
                .object([JSONMember("type", .string("Replace")), JSONMember("pattern", .object([JSONMember("String", .string("▁"))])), JSONMember("content", .string(" "))]),
                .object([JSONMember("type", .string("ByteFallback"))]),
                .object([JSONMember("type", .string("Fuse"))]),
            ]
            if addSpacePrefix {
                chain.append(.object([JSONMember("type", .string("Strip")), JSONMember("content", .string(" ")), JSONMember("start", .int(1)), JSONMember("stop", .int(0))]))
            }
            decoder = .object([JSONMember("type", .string("Sequence")), JSONMember("decoders", .array(chain))])
            modelMembers += [JSONMember("unk_token", unknown.map { .string(tokens[$0]) } ?? .null), JSONMember("continuing_subword_prefix", .null),
                             JSONMember("end_of_word_suffix", .null), JSONMember("fuse_unk", .bool(true)), JSONMember("byte_fallback", .bool(true)),
                             JSONMember("ignore_merges", .bool(false))]
        }
        modelMembers += [JSONMember("vocab", .object(vocab)), JSONMember("merges", .array(merged))]
        return .object([
            JSONMember("version", .string("1.0")), JSONMember("truncation", .null), JSONMember("padding", .null),
            JSONMember("added_tokens", .array(addedTokens)), JSONMember("normalizer", normalizer),
            JSONMember("pre_tokenizer", preTokenizer), JSONMember("post_processor", postProcessor()),
            JSONMember("decoder", decoder), JSONMember("model", .object(modelMembers)),
        ])
    }

    /// BOS/EOS around a single sequence, as `add_bos_token`/`add_eos_token` ask.
    func postProcessor() -> JSONValue {
        let first = addBOS ? bos : nil, last = addEOS ? eos : nil
        guard first != nil || last != nil else { return .null }
        func special(_ id: Int) -> JSONValue { .object([JSONMember("SpecialToken", .object([JSONMember("id", .string(tokens[id])), JSONMember("type_id", .int(0))]))]) }
        let sequence: JSONValue = .object([JSONMember("Sequence", .object([JSONMember("id", .string("A")), JSONMember("type_id", .int(0))]))])
        let single = (first.map { [special($0)] } ?? []) + [sequence] + (last.map { [special($0)] } ?? [])
        let specials = [first, last].compactMap { $0 }.map { id in
            JSONMember(tokens[id], .object([JSONMember("id", .string(tokens[id])), JSONMember("ids", .array([.int(id)])),
                                            JSONMember("tokens", .array([.string(tokens[id])]))]))
        }
        var unique: [JSONMember] = []
        for s in specials where !unique.contains(where: { $0.key == s.key }) { unique.append(s) }
        return .object([JSONMember("type", .string("TemplateProcessing")), JSONMember("single", .array(single)),
                        JSONMember("pair", .array(single)), JSONMember("special_tokens", .object(unique))])
    }

    /// The BPE merges: gpt2's as stored; for `llama`, rebuilt from the scores as transformers'
    /// SentencePiece converter does: every split of a normal piece into two pieces is a merge,
    /// ranked by the merged piece's score (highest first), ties by the parts' ids.
    func mergePairs() throws -> [(String, String)] {
        switch model {
        case .gpt2:
            return try merges.map { m in
                guard let pair = Tokenizer.splitMerge(m) else {
                    throw TokenizerError.invalid(file: "tokenizer.ggml.merges", detail: "entry \"\(m)\" is not \"a b\"")
                }
                return pair
            }
        case .llama:
            // Merges are ranked by the scores: without them there is no order to rebuild.
            guard scores.count == tokens.count else {
                throw TokenizerError.invalid(file: "tokenizer.ggml.scores", detail: "the llama vocabulary has no scores, so its merges cannot be rebuilt")
            }
            var ids: [ExactKey: Int] = [:]
            for (i, t) in tokens.enumerated() where types[i] == .normal && ids[ExactKey(t)] == nil { ids[ExactKey(t)] = i }
            var candidates: [(left: String, right: String, score: Float, a: Int, b: Int)] = []
            for (i, piece) in tokens.enumerated() where types[i] == .normal {
                let scalars = Array(piece.unicodeScalars)
                guard scalars.count > 1 else { continue }
                for cut in 1..<scalars.count {
                    var left = String.UnicodeScalarView(), right = String.UnicodeScalarView()
                    left.append(contentsOf: scalars[..<cut])
                    right.append(contentsOf: scalars[cut...])
                    let l = String(left), r = String(right)
                    if let a = ids[ExactKey(l)], let b = ids[ExactKey(r)] { candidates.append((l, r, scores[i], a, b)) }
                }
            }
            candidates.sort { x, y in x.score != y.score ? x.score > y.score : (x.a, x.b) < (y.a, y.b) }
            return candidates.map { ($0.left, $0.right) }
        }
    }

    /// A `tokenizer_config.json` naming the special tokens.
    public func tokenizerConfigJSON() -> JSONValue {
        var members: [JSONMember] = [
            JSONMember("add_bos_token", .bool(addBOS)), JSONMember("add_eos_token", .bool(addEOS)),
        ]
        for (key, id) in [("bos_token", bos), ("eos_token", eos), ("unk_token", unknown), ("pad_token", padding)] {
            if let id, tokens.indices.contains(id) { members.append(JSONMember(key, .string(tokens[id]))) }
        }
        if let chatTemplate { members.append(JSONMember("chat_template", .string(chatTemplate))) }
        members.append(JSONMember("clean_up_tokenization_spaces", .bool(false)))
        members.append(JSONMember("tokenizer_class", .string("PreTrainedTokenizerFast")))
        return .object(members)
    }
}
