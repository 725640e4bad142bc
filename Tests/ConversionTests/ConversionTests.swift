import Checkpoints
import Foundation
import Testing
@testable import Conversion
@testable import Engine
@testable import Tokenizers

enum ConvertFixtures {
    /// Max |Δ logit| of `checkpoint` run by the engine against a float64 reference golden
    /// (fixtures/engine/*/golden.safetensors: input ids, per-head λ, logits).
    static func maxLogitError(_ checkpoint: Checkpoint, golden relative: String) throws -> Float {
        let config = try checkpoint.requireConfig()
        let golden = try SafetensorsFile(path: path(relative))
        let ids = try golden.readF32("input_ids").map { Int($0) }
        let T = try golden.info("input_ids").shape[1]
        let tokens = (0..<(ids.count / T)).map { Array(ids[($0 * T)..<(($0 + 1) * T)]) }
        let lambda = try golden.readF32("lambda")
        let temps: [[Float]?] = (0..<config.layers).map { l in Array(lambda[(l * config.heads)..<((l + 1) * config.heads)]) }
        let model = try LlamaModel(store: checkpoint.store, config: config, policy: .resident)
        let r = try model.forward(ForwardRequest(tokens: tokens, temperatures: temps, logitPositions: Array(0..<T)))
        let reference = try golden.readF32("logits")
        guard r.logits.count == reference.count else { return .infinity }
        return zip(r.logits, reference).map { abs($0 - $1) }.max() ?? .infinity
    }

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures")
    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    static func temporaryDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nopekit-convert-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// HF folder → GGUF (`type`) → HF folder (`dtype`), returning both outputs' paths.
    static func roundTrip(_ folder: String, type: GGUFOutputType, dtype: DType?, in dir: String) throws -> (gguf: String, hf: String) {
        let gguf = dir + "/model.gguf", hf = dir + "/back"
        let export = try GGUFExport.plan(try Checkpoint.open(folder), type: type)
        try GGUFWriter.write(metadata: export.metadata, tensors: export.tensors, to: gguf)
        let back = try HuggingFaceExport.plan(try Checkpoint.open(gguf), dtype: dtype)
        try SafetensorsWriter.writeFolder(back.tensors, metadata: ["format": "pt"], to: hf, maxShardBytes: nil, extraFiles: { back.files })
        return (gguf, hf)
    }
}

/// HF → GGUF → HF: the architecture llama.cpp needs for each position pattern, bit-identical
/// F32 weights back, the same config; the GGUF itself is read by PyPI gguf in
/// scripts/interop/check_convert.py.
@Suite struct ConvertRoundTripTests {
    @Test(arguments: [("organism", "granite"), ("engine/llama_mha_rope", "llama"), ("engine/smollm3_every4", "smollm3"),
                      ("engine/llama_gqa2_nope", "granite"), ("engine/llama_gqa4_tied_bias", "llama")])
    func f32RoundTripIsBitIdentical(_ fixture: String, _ architecture: String) throws {
        let dir = try ConvertFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let source = try Checkpoint.open(ConvertFixtures.path(fixture))
        let (gguf, hf) = try ConvertFixtures.roundTrip(source.path, type: .f32, dtype: .f32, in: dir)
        let file = try GGUFFile(path: gguf)
        #expect(file.metadata[GGUF.Key.architecture]?.stringValue == architecture)
        let back = try Checkpoint.open(hf)
        let a = try source.requireConfig(), b = try back.requireConfig()
        #expect(a.positions == b.positions && a.layers == b.layers && a.heads == b.heads && a.kvHeads == b.kvHeads)
        #expect(a.headDim == b.headDim && a.hidden == b.hidden && a.intermediate == b.intermediate && a.vocab == b.vocab)
        #expect(a.normEps == b.normEps && a.rope.theta == b.rope.theta && a.tiedEmbeddings == b.tiedEmbeddings)
        #expect(a.attentionBias == b.attentionBias && a.maxPositionEmbeddings == b.maxPositionEmbeddings)
        let sourceNames = Set(source.store.tensors.map(\.name)), backNames = Set(back.store.tensors.map(\.name))
        #expect(sourceNames == backNames)
        for name in sourceNames.sorted() {
            let x = try source.store.withRawBytes(name) { Array($0) }
            let y = try back.store.withRawBytes(name) { Array($0) }
            #expect(x == y, "\(fixture): \(name) differs after the round trip")
        }
        // The Q/K rows really moved in the GGUF (else the round trip would pass trivially).
        if architecture != "granite" {
            let hfQ = try source.store.readF32("model.layers.0.self_attn.q_proj.weight")
            let ggufQ = try file.readF32("blk.0.attn_q.weight")
            #expect(hfQ != ggufQ)
            #expect(QKPermutation.toHuggingFace(ggufQ, rowWidth: a.hidden, headDim: a.headDim) == hfQ)
        }
    }

    /// Our GGUF, run by our engine, gives the PyTorch reference's logits for the HF folder
    /// (fixtures/engine/*/golden.safetensors), for a permuted llama, the smollm3 hybrid, granite
    /// NoPE and a qwen2-style model (unpermuted, NEOX RoPE in llama.cpp).
    @Test(arguments: ["llama_mha_rope", "smollm3_every4", "llama_gqa2_nope", "qwen2:llama_gqa4_tied_bias"])
    func ggufForwardMatchesTheReference(_ spec: String) throws {
        let dir = try ConvertFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let parts = spec.split(separator: ":").map(String.init)
        let name = parts.last!
        var folder = ConvertFixtures.path("engine/\(name)")
        if parts.count == 2 {
            // The same weights declared as another model type.
            folder = dir + "/as-\(parts[0])"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: ConvertFixtures.path("engine/\(name)/model.safetensors"), toPath: folder + "/model.safetensors")
            let config = try String(contentsOfFile: ConvertFixtures.path("engine/\(name)/config.json"), encoding: .utf8)
                .replacingOccurrences(of: "\"model_type\": \"llama\"", with: "\"model_type\": \"\(parts[0])\"")
            #expect(config.contains("\"model_type\": \"\(parts[0])\""))
            try config.write(toFile: folder + "/config.json", atomically: true, encoding: .utf8)
        }
        let gguf = dir + "/model.gguf"
        let export = try GGUFExport.plan(try Checkpoint.open(folder), type: .f32)
        if parts.count == 2 { #expect(export.architecture.name == parts[0]) }
        try GGUFWriter.write(metadata: export.metadata, tensors: export.tensors, to: gguf)
        let d = try ConvertFixtures.maxLogitError(try Checkpoint.open(gguf), golden: "engine/\(name)/golden.safetensors")
        print("\(spec): GGUF forward vs reference max |Δ logit| \(d)")
        #expect(d < 2e-4)
    }

    /// A PyTorch `.bin` folder (fixtures/pytorch/hf_model: llama_mha_rope saved by torch.save,
    /// k_proj as transposed views) opens by content, runs to the reference logits, and converts
    /// to the same GGUF tensors as its safetensors twin.
    @Test func pytorchFolderConvertsLikeItsSafetensorsTwin() throws {
        let dir = try ConvertFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bin = try Checkpoint.open(ConvertFixtures.path("pytorch/hf_model"))
        #expect(bin.format == .pytorch && !bin.store.mapsFiles)
        let d = try ConvertFixtures.maxLogitError(bin, golden: "engine/llama_mha_rope/golden.safetensors")
        #expect(d < 2e-4, "max |Δ logit| \(d)")
        var files: [GGUFFile] = []
        for (i, source) in [bin, try Checkpoint.open(ConvertFixtures.path("engine/llama_mha_rope"))].enumerated() {
            let export = try GGUFExport.plan(source, type: .q8_0)
            try GGUFWriter.write(metadata: export.metadata, tensors: export.tensors, to: dir + "/\(i).gguf")
            files.append(try GGUFFile(path: dir + "/\(i).gguf"))
        }
        #expect(files[0].tensors.map(\.name) == files[1].tensors.map(\.name) && files[0].tensors.count == 21)
        for t in files[0].tensors {
            #expect(try files[0].withRawBytes(t.name) { Array($0) } == files[1].withRawBytes(t.name) { Array($0) }, "\(t.name)")
        }
    }

    /// q8_0: the dequantised weights come back within the block format's rounding, and the
    /// norms (F32 in the GGUF) bit for bit.
    @Test func q8RoundTripStaysWithinTheBlockBound() throws {
        let dir = try ConvertFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let source = try Checkpoint.open(ConvertFixtures.path("organism"))
        let (gguf, hf) = try ConvertFixtures.roundTrip(source.path, type: .q8_0, dtype: .f32, in: dir)
        let file = try GGUFFile(path: gguf)
        #expect(file.metadata[GGUF.Key.fileType]?.intValue == 7)
        #expect(file.lookup("blk.0.attn_norm.weight")?.type == .plain(.f32))
        #expect(file.lookup("blk.0.attn_q.weight")?.type == .quantized(.q8_0))
        let back = try Checkpoint.open(hf)
        for info in source.store.tensors {
            let x = try source.store.readF32(info.name), y = try back.store.readF32(info.name)
            if info.shape.count == 1 { #expect(x == y, "\(info.name)"); continue }
            // Q8_0: d = amax/127 per 32 values and q = round(x/d), so |x − q·d| ≤ d/2; d is then
            // stored as fp16 (relative error ≤ 2⁻¹¹), which moves q·d by up to 127·d·2⁻¹¹.
            for block in stride(from: 0, to: x.count, by: 32) {
                let amax = x[block..<(block + 32)].map(abs).max()!
                let d = amax / 127
                let bound = d * (0.5 + 127 / 2048) * (1 + 1e-6) + 1e-30
                let worst = (block..<(block + 32)).map { abs(x[$0] - y[$0]) }.max()!
                if worst > bound { Issue.record("\(info.name) block \(block / 32): error \(worst) > bound \(bound)"); return }
            }
        }
    }
}

/// Patterns and features llama.cpp cannot run are refused by name, before anything is written.
@Suite struct ConvertRefusalTests {
    @Test func otherPositionPatternsAreRefused() throws {
        let checkpoint = try Checkpoint.open(ConvertFixtures.path("engine/llama_mha_rope"), position: try PositionSpec(parsing: "layers:0"))
        #expect(throws: ConvertError.positionPattern(source: checkpoint.path, pattern: "layers:0")) {
            _ = try GGUFExport.plan(checkpoint, type: .f32)
        }
    }

    @Test(arguments: ["window_hybrid", "qknorm_nope", "rope_llama3_scaling", "rope_partial_rotary"])
    func unsupportedFeaturesAreRefused(_ name: String) throws {
        let checkpoint = try Checkpoint.open(ConvertFixtures.path("engine/\(name)"))
        #expect(throws: ConvertError.self) { _ = try GGUFExport.plan(checkpoint, type: .f32) }
    }

    @Test func rowsThatAreNotWholeBlocksFallBack() {
        #expect(GGUFOutputType.q4_k.storedType(shape: [64, 192]) == .q5_0)
        #expect(GGUFOutputType.q6_k.storedType(shape: [64, 512]) == .q6_K)
        #expect(GGUFOutputType.q8_0.storedType(shape: [64, 48]) == .f16)
        #expect(GGUFOutputType.q8_0.storedType(shape: [192]) == .f32)
    }
}

/// The GGUF vocabulary tokenizes like the HF tokenizer it came from (PyPI tokenizers' ids in
/// fixtures/tokenizers/*/expected.json), through llama.cpp's algorithms as nopekit implements
/// them; and the tokenizer.json rebuilt from it tokenizes the same.
@Suite struct ConvertVocabularyTests {
    @Test(arguments: ["spm_normalizer", "spm_metaspace", "bytelevel_llama3", "bytelevel_gpt2"])
    func vocabularyTokenizesLikeTheSource(_ name: String) throws {
        let folder = ConvertFixtures.path("tokenizers/\(name)")
        let original = try Tokenizer.load(folder)
        let vocabulary = try GGUFVocabulary.fromHuggingFace(folder: folder, vocabSize: original.vocabularySize, fallbackBOS: nil, fallbackEOS: nil)
        #expect(vocabulary.model == (name.hasPrefix("spm") ? .llama : .gpt2))
        let fromGGUF = try Tokenizer.fromGGUF(vocabulary.metadata, file: name + ".gguf")
        let back = try #require(try GGUFVocabulary.fromGGUF(vocabulary.metadata, file: name + ".gguf"))
        #expect(back.tokens == vocabulary.tokens && back.types == vocabulary.types)
        let rebuilt = try Tokenizer.load(tokenizerJSON: JSONWriter.compact(try back.tokenizerJSON()),
                                         config: JSONWriter.compact(back.tokenizerConfigJSON()), name: name + "/rebuilt")
        let cases = try JSON.cases(ConvertFixtures.path("tokenizers/\(name)/expected.json"))
        #expect(cases.count >= 100)
        // What GGUF cannot say is announced, and only those texts may differ: an added token
        // that absorbs the space before it (lstrip), and Metaspace's rule for the ▁ it prepends
        // (not before a text that starts with one; its own rule beside special tokens), where
        // llama.cpp always prepends one at the start and after a special token.
        let lstrip = original.added.tokens.filter(\.lstrip).map(\.content)
        let metaspace = name == "spm_metaspace"
        #expect(vocabulary.notes.contains { $0.contains("lstrip") } == !lstrip.isEmpty)
        #expect(vocabulary.notes.contains { $0.contains("Metaspace") } == metaspace)
        var differ = (gguf: 0, rebuilt: 0), excused = 0
        for (text, ids) in cases {
            if lstrip.contains(where: { text.contains(" " + $0) }) || (metaspace && (text.first?.isWhitespace == true || text.hasPrefix("▁") || text.contains("<s>") || text.contains("</s>"))) {
                excused += 1
                continue
            }
            if fromGGUF.encode(text) != ids { differ.gguf += 1; if differ.gguf <= 3 { Issue.record("\(name) GGUF: \(String(reflecting: text)) \(fromGGUF.encode(text)) vs \(ids)") } }
            if rebuilt.encode(text) != ids { differ.rebuilt += 1; if differ.rebuilt <= 3 { Issue.record("\(name) rebuilt: \(String(reflecting: text)) \(rebuilt.encode(text)) vs \(ids)") } }
        }
        print("\(name): \(cases.count) texts (\(excused) excused), GGUF vocabulary differs on \(differ.gguf), rebuilt tokenizer.json on \(differ.rebuilt)")
        #expect(differ.gguf == 0 && differ.rebuilt == 0)
    }

    enum JSON {
        static func cases(_ path: String) throws -> [(String, [Int])] {
            let json = try JSONReader.parse([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
            return (json.arrayValue ?? []).compactMap { c in
                guard let text = c["text"]?.stringValue, let ids = c["ids"]?.arrayValue?.compactMap(\.intValue) else { return nil }
                return (text, ids)
            }
        }
    }
}
