import Checkpoints
import Foundation

extension Tokenizer {
    /// Llama 3's pre-tokenization regex, as its tokenizer.json and llama.cpp's `llama-bpe` use it.
    static let llama3Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// Loads the tokenizer at `path`: a folder holding `tokenizer.json` (a model folder or one
    /// with only the tokenizer files), a `tokenizer.json` file, or a `.gguf` file.
    public static func load(_ path: String) throws -> Tokenizer {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw TokenizerError.notFound(path: path) }
        if path.hasSuffix(".gguf") && !isDir.boolValue {
            let file = try GGUFFile(path: path)
            return try fromGGUF(file.metadata, file: path)
        }
        let json = isDir.boolValue ? (path as NSString).appendingPathComponent("tokenizer.json") : path
        guard FileManager.default.fileExists(atPath: json) else { throw TokenizerError.notFound(path: path) }
        let configPath = ((json as NSString).deletingLastPathComponent as NSString).appendingPathComponent("tokenizer_config.json")
        let config = FileManager.default.fileExists(atPath: configPath) ? try readJSON(configPath) : nil
        return try fromTokenizerJSON(try readJSON(json), config: config, file: json)
    }

    /// A tokenizer from the text of a `tokenizer.json` (and its `tokenizer_config.json`), for
    /// tokenizers that are built in code rather than read from a folder; `name` labels errors.
    public static func load(tokenizerJSON: String, config: String?, name: String) throws -> Tokenizer {
        func parse(_ text: String) throws -> JSONValue {
            do { return try JSONReader.parse(text) } catch { throw TokenizerError.unreadable(file: name, detail: "not valid JSON: \(error)") }
        }
        return try fromTokenizerJSON(try parse(tokenizerJSON), config: try config.map(parse), file: name)
    }

    static func readJSON(_ path: String) throws -> JSONValue {
        do {
            return try JSONReader.parse(try SmallFile.read(path))
        } catch let e as JSONSyntaxError {
            throw TokenizerError.unreadable(file: path, detail: "not valid JSON: \(e)")
        } catch {
            throw TokenizerError.unreadable(file: path, detail: "\(error)")
        }
    }

    /// "a b" → ("a", "b"): split at the first space byte after the first scalar, on scalars (a
    /// combining mark after the space would glue it to the space as one Character).
    static func splitMerge(_ s: String) -> (String, String)? {
        let scalars = s.unicodeScalars
        guard let first = scalars.indices.first,
              let space = scalars[scalars.index(after: first)...].firstIndex(of: " ") else { return nil }
        return (String(scalars[..<space]), String(scalars[scalars.index(after: space)...]))
    }

    /// A Hugging Face `tokenizer.json` with a BPE model.
    static func fromTokenizerJSON(_ json: JSONValue, config: JSONValue?, file: String) throws -> Tokenizer {
        guard let model = json["model"] else { throw TokenizerError.invalid(file: file, detail: "no 'model'") }
        let type = model["type"]?.stringValue ?? (model["merges"] != nil ? "BPE" : "?")
        guard type == "BPE" else {
            throw TokenizerError.unsupported(file: file, component: "the \(type) model", detail: "nopekit implements BPE only")
        }
        if let d = model["dropout"], !d.isNull, d.doubleValue != 0 {
            throw TokenizerError.unsupported(file: file, component: "BPE dropout", detail: "encoding would not be deterministic")
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let v = model[key]?.stringValue, !v.isEmpty {
                throw TokenizerError.unsupported(file: file, component: "BPE \(key) \"\(v)\"", detail: "not implemented")
            }
        }
        guard let vocabEntries = model["vocab"]?.objectValue, !vocabEntries.isEmpty else {
            throw TokenizerError.invalid(file: file, detail: "the model's 'vocab' is missing or empty")
        }
        var entries: [(String, Int)] = []
        for m in vocabEntries {
            guard let id = m.value.intValue, id >= 0 else { throw TokenizerError.invalid(file: file, detail: "vocab entry '\(m.key)' has no id") }
            entries.append((m.key, id))
        }
        if let m = model["merges"], !m.isNull, m.arrayValue == nil {
            throw TokenizerError.invalid(file: file, detail: "'merges' must be a list")
        }
        var merges: [(String, String)] = []
        for m in model["merges"]?.arrayValue ?? [] {
            if let s = m.stringValue {
                guard let pair = splitMerge(s) else { throw TokenizerError.invalid(file: file, detail: "merge \"\(s)\" has no space") }
                merges.append(pair)
            } else if let pair = m.arrayValue, pair.count == 2, let a = pair[0].stringValue, let b = pair[1].stringValue {
                merges.append((a, b))
            } else {
                throw TokenizerError.invalid(file: file, detail: "a merge is neither \"a b\" nor [a, b]")
            }
        }
        var addedList: [AddedTokens.Token] = []
        for t in json["added_tokens"]?.arrayValue ?? [] {
            guard let id = t["id"]?.intValue, let content = t["content"]?.stringValue else { continue }
            guard id >= 0 else { throw TokenizerError.invalid(file: file, detail: "added token \"\(content)\" has the negative id \(id)") }
            addedList.append(.init(id: id, content: content, special: t["special"]?.boolValue ?? false,
                                   lstrip: t["lstrip"]?.boolValue ?? false, rstrip: t["rstrip"]?.boolValue ?? false,
                                   singleWord: t["single_word"]?.boolValue ?? false))
        }
        // Ids index arrays: they must be dense (at most as many distinct ids as entries), checked
        // before anything is allocated by id (an id of 2^40 would ask for terabytes).
        let idCount = entries.count + addedList.count
        if let (name, id) = (entries + addedList.map { ($0.content, $0.id) }).first(where: { $0.1 >= idCount }) {
            throw TokenizerError.invalid(file: file, detail: "token \"\(name)\" has id \(id), beyond the \(idCount) vocabulary and added entries: ids must be dense")
        }
        let bpe = try BPEModel(vocab: entries, merges: merges, unknown: model["unk_token"]?.stringValue,
                               byteFallback: model["byte_fallback"]?.boolValue ?? false,
                               fuseUnknown: model["fuse_unk"]?.boolValue ?? false,
                               ignoreMerges: model["ignore_merges"]?.boolValue ?? false, file: file)
        var pieces = bpe.idToToken
        for t in addedList {
            if t.id >= pieces.count { pieces += Array(repeating: "", count: t.id + 1 - pieces.count) }
            pieces[t.id] = t.content
        }
        func tokenID(_ value: JSONValue?) -> Int? {
            guard let name = value?.stringValue ?? value?["content"]?.stringValue else { return nil }
            return addedList.first { $0.content.utf8.elementsEqual(name.utf8) }?.id ?? bpe.vocab[ExactKey(name)]
        }
        let (prefix, suffix) = try postProcessorIDs(json["post_processor"], config: config, vocab: bpe.vocab, added: addedList, file: file)
        let preTokenizer = try PreTokenizer.from(json["pre_tokenizer"], file: file)
        var isByteLevel = false
        if case .byteLevel = preTokenizer { isByteLevel = true }
        if case .sequence(let list) = preTokenizer, list.contains(where: { if case .byteLevel = $0 { return true } else { return false } }) { isByteLevel = true }
        return Tokenizer(kind: isByteLevel ? .byteLevelBPE : .sentencePieceBPE, source: file, model: bpe, sentencePiece: nil,
                         normalizer: try Normalizer.from(json["normalizer"], file: file), preTokenizer: preTokenizer,
                         decoder: try Decoder.from(json["decoder"], file: file), added: AddedTokens(addedList),
                         prefix: prefix, suffix: suffix, addSpacePrefix: false,
                         bosID: tokenID(config?["bos_token"]), eosID: tokenID(config?["eos_token"]), idToPiece: pieces)
    }

    /// The ids a post-processor adds around a single sequence (TemplateProcessing), or those
    /// `tokenizer_config.json` asks for when there is no post-processor.
    static func postProcessorIDs(_ json: JSONValue?, config: JSONValue?, vocab: [ExactKey: Int],
                                 added: [AddedTokens.Token], file: String) throws -> ([Int], [Int]) {
        guard let json, !json.isNull else {
            func id(_ key: String) -> Int? {
                guard let v = config?[key], let name = v.stringValue ?? v["content"]?.stringValue else { return nil }
                return added.first { $0.content.utf8.elementsEqual(name.utf8) }?.id ?? vocab[ExactKey(name)]
            }
            let bos = config?["add_bos_token"]?.boolValue == true ? id("bos_token").map { [$0] } ?? [] : []
            let eos = config?["add_eos_token"]?.boolValue == true ? id("eos_token").map { [$0] } ?? [] : []
            return (bos, eos)
        }
        switch json["type"]?.stringValue ?? "" {
        case "TemplateProcessing":
            var prefix: [Int] = [], suffix: [Int] = []
            var seenSequence = false
            let specials = json["special_tokens"]
            for item in json["single"]?.arrayValue ?? [] {
                if item["Sequence"] != nil { seenSequence = true; continue }
                guard let name = item["SpecialToken"]?["id"]?.stringValue,
                      let ids = specials?[name]?["ids"]?.arrayValue?.compactMap(\.intValue) else {
                    throw TokenizerError.invalid(file: file, detail: "TemplateProcessing item without a known special token")
                }
                if seenSequence { suffix += ids } else { prefix += ids }
            }
            return (prefix, suffix)
        case "ByteLevel":
            return ([], [])
        case "Sequence":
            var prefix: [Int] = [], suffix: [Int] = []
            for p in json["processors"]?.arrayValue ?? [] {
                let (a, b) = try postProcessorIDs(p, config: config, vocab: vocab, added: added, file: file)
                prefix += a
                suffix = b + suffix
            }
            return (prefix, suffix)
        case let other:
            throw TokenizerError.unsupported(file: file, component: "post-processor \(other)", detail: "not implemented")
        }
    }

    /// A GGUF vocabulary (`tokenizer.ggml.*`, llama.cpp conventions), read by `GGUFVocabulary`.
    static func fromGGUF(_ metadata: [GGUFKeyValue], file: String) throws -> Tokenizer {
        guard let v = try GGUFVocabulary.fromGGUF(metadata, file: file) else {
            throw TokenizerError.invalid(file: file, detail: "no tokenizer.ggml.model (or \"none\"): this GGUF has no vocabulary")
        }
        let tokens = v.tokens
        // Unknown (2), control (3) and user-defined (4) tokens are matched in the text, as
        // llama.cpp does with parse_special; unknown and control ones are special (skippable).
        let added = AddedTokens(tokens.indices.filter { [.unknown, .control, .userDefined].contains(v.types[$0]) && !tokens[$0].isEmpty }
            .map { .init(id: $0, content: tokens[$0], special: v.types[$0] != .userDefined, lstrip: false, rstrip: false, singleWord: false) })
        let prefix = v.addBOS ? v.bos.map { [$0] } ?? [] : []
        switch v.model {
        case .llama:
            let scores = v.scores.isEmpty ? Array(repeating: 0, count: tokens.count) : v.scores
            let sp = SentencePieceModel(pieces: tokens, scores: scores, unknownID: v.unknown ?? 0)
            // Decoding as Llama 2's tokenizer.json does: ▁ → space, <0xNN> runs → UTF-8 (an
            // invalid run gives one U+FFFD per byte), and the prefixed space removed.
            var chain: [Decoder] = [.replace(pattern: "▁", content: " "), .byteFallback, .fuse]
            if v.addSpacePrefix { chain.append(.strip(content: " ", start: 1, stop: 0)) }
            return Tokenizer(kind: .ggufLlama, source: file, model: nil, sentencePiece: sp, normalizer: nil, preTokenizer: nil,
                             decoder: .sequence(chain), added: added, prefix: prefix,
                             suffix: v.addEOS ? v.eos.map { [$0] } ?? [] : [],
                             addSpacePrefix: v.addSpacePrefix, bosID: v.bos, eosID: v.eos, idToPiece: tokens)
        case .gpt2:
            let pattern: String
            switch v.pre {
            case "llama-bpe", "llama3", "llama-v3": pattern = llama3Pattern
            case "default", "gpt-2", "gpt2": pattern = PreTokenizer.gpt2Pattern
            default:
                throw TokenizerError.unsupported(file: file, component: "tokenizer.ggml.pre \"\(v.pre)\"", detail: "its pre-tokenizer regex is not implemented (llama-bpe and gpt-2 are)")
            }
            let bpe = try BPEModel(vocab: tokens.enumerated().map { ($1, $0) }, merges: try v.mergePairs(), unknown: nil, byteFallback: false,
                                   fuseUnknown: false, ignoreMerges: v.pre.hasPrefix("llama"), file: file)
            return Tokenizer(kind: .ggufGPT2, source: file, model: bpe, sentencePiece: nil, normalizer: nil,
                             preTokenizer: .sequence([.split(try SplitPattern(regex: pattern, file: file), behavior: .isolated, invert: false),
                                                      .byteLevel(addPrefixSpace: false, useRegex: false)]),
                             decoder: .byteLevel, added: added, prefix: prefix, suffix: [],
                             addSpacePrefix: false, bosID: v.bos, eosID: v.eos, idToPiece: tokens)
        }
    }
}
