import Checkpoints
import Foundation
import Tokenizers

/// A Hugging Face checkpoint (safetensors or `.bin`, with `config.json`) planned as a GGUF file
/// that stock llama.cpp loads: llama.cpp's tensor names (the one name table), Q/K rows permuted
/// where its converter permutes them, 1-D tensors F32 and 2-D weights in `--type`, the metadata
/// keys its loader reads, the tokenizer as `tokenizer.ggml.*`, and `nopekit.position` so that
/// reading the file back restores the per-layer position encoding exactly.
///
/// Planning reads headers only; `tensors` stream from the source when written.
public struct GGUFExport {
    /// One tensor of the plan, for `--dry-run` and tests.
    public struct Entry: Sendable {
        public var source: String
        public var name: String
        public var type: GGMLType
        public var shape: [Int]
        public var permuted: Bool
    }

    public let architecture: GGUFArchitecture
    public let outputType: GGUFOutputType
    public let metadata: [GGUFKeyValue]
    public let entries: [Entry]
    public let tensors: [OutputTensor]
    /// What a user should know: skipped tensors, fallback types, tokenizer caveats.
    public let notes: [String]

    /// - Parameter tensors: where to read the tensors from instead of the checkpoint's own store
    ///   (the bake's `ScaledStore`, which writes a baked model straight to GGUF).
    public static func plan(_ checkpoint: Checkpoint, type requested: GGUFOutputType?, tensors view: (any TensorStore)? = nil) throws -> GGUFExport {
        let store = view ?? checkpoint.store
        let source = checkpoint.path
        let config = try checkpoint.requireConfig()
        guard NameConvention.detect(store) == .huggingFace else {
            throw ConvertError.unsupportedGGUF(source: source, detail: "the tensors already have llama.cpp names")
        }
        try config.check(against: store)
        let architecture = try GGUFArchitecture.choose(for: config, source: source)
        let weightTypes = store.tensors.filter { $0.shape.count >= 2 }.compactMap(\.dtype)
        let outputType = requested ?? GGUFOutputType.matching(weightTypes.first)
        var notes: [String] = []

        // Tensors, in llama.cpp's order: embedding, layer by layer, final norm, head.
        var planned: [(role: TensorRole, info: TensorInfo)] = []
        for info in store.tensors {
            guard let role = TensorRole.parse(info.name, .huggingFace) else {
                if info.name.hasSuffix("rotary_emb.inv_freq") {
                    notes.append("skipped \(info.name): a RoPE buffer llama.cpp recomputes")
                    continue
                }
                throw ConvertError.unknownTensor(source: source, name: info.name)
            }
            if role == .lmHead && config.tiedEmbeddings {
                notes.append("skipped \(info.name): the head is tied to the embedding")
                continue
            }
            planned.append((role, info))
        }
        planned.sort { order($0.role).lexicographicallyPrecedes(order($1.role)) }
        var entries: [Entry] = [], tensors: [OutputTensor] = []
        var fallbacks: [String: Int] = [:]
        for (role, info) in planned {
            let stored = outputType.storedType(shape: info.shape)
            if info.shape.count >= 2 && stored != outputType.ggml { fallbacks["\(outputType.ggml.name) → \(stored.name)", default: 0] += 1 }
            var permutation: TensorTranscoder.Permutation? = nil
            if architecture.permutesQK && QKPermutation.reorders(role) {
                permutation = .init(.toGGUF, headDim: config.headDim)
            }
            let name = role.name(.gguf)
            entries.append(Entry(source: info.name, name: name, type: stored, shape: info.shape, permuted: permutation != nil))
            tensors.append(try TensorTranscoder.output(info, from: store, as: TensorType(ggml: stored), name: name, permutation: permutation))
        }
        for (change, count) in fallbacks.sorted(by: { $0.key < $1.key }) {
            notes.append("\(count) tensors stored as \(change.split(separator: " ").last!) (\(change)): their rows are not whole \(outputType.ggml.name) blocks")
        }

        var metadata = modelMetadata(config, architecture: architecture, outputType: outputType,
                                     name: ((checkpoint.folder as NSString).standardizingPath as NSString).lastPathComponent, notes: &notes)
        let tokenizerPath = (checkpoint.folder as NSString).appendingPathComponent("tokenizer.json")
        if FileManager.default.fileExists(atPath: tokenizerPath) {
            let vocabulary = try GGUFVocabulary.fromHuggingFace(folder: checkpoint.folder, vocabSize: config.vocab,
                                                                fallbackBOS: config.bosTokenID, fallbackEOS: config.eosTokenIDs.first)
            metadata += vocabulary.metadata
            notes += vocabulary.notes
        } else {
            metadata.append(GGUFKeyValue("tokenizer.ggml.model", .string("none")))
            // The special ids still belong to the model (config.json's), and reading back needs them.
            if let bos = config.bosTokenID { metadata.append(GGUFKeyValue("tokenizer.ggml.bos_token_id", .uint32(UInt32(bos)))) }
            if let eos = config.eosTokenIDs.first { metadata.append(GGUFKeyValue("tokenizer.ggml.eos_token_id", .uint32(UInt32(eos)))) }
            notes.append("no tokenizer.json beside the weights: the GGUF has no vocabulary (llama.cpp runs it on token ids only)")
        }
        metadata.append(GGUFKeyValue(GGUF.Key.quantizationVersion, .uint32(2)))
        metadata.append(GGUFKeyValue(GGUF.Key.nopekitPosition, .string(PositionSpec.describe(config.positions))))
        return GGUFExport(architecture: architecture, outputType: outputType, metadata: metadata, entries: entries, tensors: tensors, notes: notes)
    }

    /// The model keys, in the order llama.cpp's converter writes them (formats.md §3.2).
    static func modelMetadata(_ c: ModelConfig, architecture: GGUFArchitecture, outputType: GGUFOutputType,
                              name: String, notes: inout [String]) -> [GGUFKeyValue] {
        let a = architecture.name
        func key(_ suffix: String) -> String { GGUF.Key.arch(a, suffix) }
        func u32(_ v: Int) -> GGUFValue { .uint32(UInt32(v)) }
        let context = c.maxPositionEmbeddings ?? 4096
        if c.maxPositionEmbeddings == nil { notes.append("config.json has no max_position_embeddings: context_length written as 4096") }
        var kv: [GGUFKeyValue] = [
            .init(GGUF.Key.architecture, .string(a)),
            .init("general.type", .string("model")),
            .init(GGUF.Key.name, .string(name)),
            .init(key(GGUF.Key.blockCount), u32(c.layers)),
            .init(key(GGUF.Key.contextLength), u32(context)),
            .init(key(GGUF.Key.embeddingLength), u32(c.hidden)),
            .init(key(GGUF.Key.feedForwardLength), u32(c.intermediate)),
            .init(key(GGUF.Key.headCount), u32(c.heads)),
            .init(key(GGUF.Key.headCountKV), u32(c.kvHeads)),
            .init(key(GGUF.Key.ropeFreqBase), .float32(Float(c.rope.theta))),
            .init(key(GGUF.Key.rmsEpsilon), .float32(Float(c.normEps))),
            .init(key(GGUF.Key.keyLength), u32(c.headDim)),
            .init(key(GGUF.Key.valueLength), u32(c.headDim)),
            .init(GGUF.Key.fileType, .uint32(outputType.fileType)),
            .init(key(GGUF.Key.vocabSize), u32(c.vocab)),
            .init(key(GGUF.Key.ropeDimensionCount), u32(c.rope.rotaryDim(headDim: c.headDim))),
        ]
        if c.positions.contains(.rope), let type = c.rope.scalingType, type == "linear" || type == "yarn", let factor = c.rope.factor {
            kv.append(.init(key(GGUF.Key.ropeScalingType), .string(type)))
            kv.append(.init(key(GGUF.Key.ropeScalingFactor), .float32(Float(factor))))
            if let original = c.rope.originalMaxPositionEmbeddings {
                kv.append(.init(key(GGUF.Key.ropeScalingOriginalContext), u32(original)))
            }
        }
        return kv + architecture.extraMetadata
    }

    /// Sort key: embedding, then each layer's tensors in the name table's order, final norm, head.
    static func order(_ role: TensorRole) -> [Int] {
        switch role {
        case .embedding: return [0]
        case .layer(let l, let t): return [1, l, LayerTensor.allCases.firstIndex(of: t)!]
        case .finalNorm: return [2]
        case .lmHead: return [3]
        }
    }
}
