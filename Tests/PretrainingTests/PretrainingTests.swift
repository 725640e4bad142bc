import Checkpoints
import Engine
import Foundation
import Testing
import Tokenizers
@testable import Pretraining
import Verification

@Suite struct CorpusTests {
    @Test func isDeterministicAndMixed() {
        let a = Corpus.generate(seed: 7, size: 50_000, maxDocument: 256)
        let b = Corpus.generate(seed: 7, size: 50_000, maxDocument: 256)
        #expect(a == b && a.utf8.count >= 50_000)
        #expect(Corpus.generate(seed: 8, size: 5_000) != Corpus.generate(seed: 7, size: 5_000))
        let documents = a.components(separatedBy: "\n\n").filter { !$0.isEmpty }
        let passkey = documents.filter { $0.contains("The pass key is") }
        #expect(passkey.count > documents.count / 4 && passkey.count < 3 * documents.count / 4)
        for d in passkey.prefix(20) {
            // The needle's key is the answer at the end.
            let key = d.components(separatedBy: "The pass key is ")[1].prefix(5)
            #expect(d.hasSuffix("What is the pass key? The pass key is \(key)."), "\(d.suffix(60))")
            #expect(d.utf8.count <= 256 + 64)
        }
    }

    @Test func passkeyPlacesTheNeedleAtTheDepth() {
        var r = Corpus.Random(seed: 1)
        let early = Corpus.passkeyDocument(key: 12345, bytes: 2000, depth: 0, &r).prompt
        let late = Corpus.passkeyDocument(key: 12345, bytes: 2000, depth: 1, &r).prompt
        let position = { (t: String) in t.distance(from: t.startIndex, to: t.range(of: "The pass key is 12345")!.lowerBound) }
        #expect(position(early) < 400 && position(late) > 1500)
    }
}

@Suite struct ByteVocabularyTests {
    @Test func tokenizerJSONIsTheByteMap() throws {
        let dir = NSTemporaryDirectory() + "nopekit-vocab-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ByteVocabulary.tokenizerJSON.write(toFile: dir + "/tokenizer.json", atomically: true, encoding: .utf8)
        try ByteVocabulary.tokenizerConfigJSON.write(toFile: dir + "/tokenizer_config.json", atomically: true, encoding: .utf8)
        let tokenizer = try Tokenizer.load(dir)
        #expect(tokenizer.vocabularySize == 258 && tokenizer.bosID == 256 && tokenizer.eosID == 257)
        for text in ["The pass key is 12345.", "héllo\n\tw😀rld", "\u{0}\u{7F}"] {
            #expect(tokenizer.encode(text) == [256] + ByteVocabulary.ids(text))
            #expect(tokenizer.decode(ByteVocabulary.ids(text)) == text)
        }
    }
}

@Suite(.serialized) struct TrainerTests {
    static func options(_ out: String, steps: Int) -> Trainer.Options {
        var o = Trainer.Options(output: out)
        (o.layers, o.hidden, o.heads, o.kvHeads, o.headDim, o.intermediate) = (2, 32, 4, 2, 8, 64)
        (o.length, o.batch, o.steps, o.evalEvery, o.evalSequences, o.corpusBytes) = (32, 4, steps, 3, 4, 60_000)
        o.optimizer.warmupSteps = 2
        return o
    }

    /// Training learns, saves an HF folder nopekit reads back, and a resumed run continues exactly
    /// where an uninterrupted run would be.
    @Test func trainsSavesAndResumesExactly() throws {
        let base = NSTemporaryDirectory() + "nopekit-train-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: base) }
        let straight = try Trainer(Self.options(base + "/a", steps: 6))
        try straight.run { _ in }
        try straight.save()
        #expect(straight.log.count == 6 && straight.log.last!.loss < straight.log.first!.loss)
        let half = try Trainer(Self.options(base + "/b", steps: 6))
        try half.run(until: 3) { _ in }
        try half.save()
        let resumed = try Trainer(Self.options(base + "/b", steps: 6))
        try resumed.resume()
        try resumed.run { _ in }
        #expect(resumed.log.count == 6)
        #expect(resumed.log.last!.loss == straight.log.last!.loss, "resumed \(resumed.log.last!.loss) vs straight \(straight.log.last!.loss)")
        // Every tensor and both AdamW moments, bit for bit (the embedding alone could hide a
        // layer that was not restored; issue 13).
        func bits(_ p: Parameters, _ name: String) -> [UInt32] { (p.tensor(name) ?? []).map(\.bitPattern) }
        let names = straight.parameters.tensorList.map(\.name)
        #expect(names.count > 3 && names == resumed.parameters.tensorList.map(\.name))
        let (a, b) = (straight.optimizerState, resumed.optimizerState)
        #expect(a.step == b.step)
        for name in names {
            #expect(bits(resumed.parameters, name) == bits(straight.parameters, name), "weights \(name) differ from an uninterrupted run")
            #expect(bits(b.m, name) == bits(a.m, name) && bits(b.v, name) == bits(a.v, name), "AdamW moments of \(name) differ")
        }
        // The saved folder is an ordinary checkpoint with its position stated.
        let checkpoint = try Checkpoint.open(base + "/a")
        let config = try checkpoint.requireConfig()
        #expect(config.positions == [.none, .none] && config.positionSource.contains("nopekit_position"))
        #expect(FileManager.default.fileExists(atPath: base + "/a/TRAINING.md"))
        let model = try LlamaModel(store: checkpoint.store, config: config)
        let r = try model.forward(ForwardRequest(tokens: [[256, 84, 104, 101]], losses: true))
        #expect(r.losses.count == 3)
    }
}

/// The local-RoPE + global-NoPE hybrid (issue 15): a sliding window on the RoPE layers only,
/// written to config.json so that nopekit and transformers read the same layout back.
@Suite struct HybridTrainerTests {
    @Test func windowsGoOnTheRoPELayersAndSurviveTheFolder() throws {
        let base = NSTemporaryDirectory() + "nopekit-hybrid-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: base) }
        var o = TrainerTests.options(base, steps: 2)
        o.position = try PositionSpec(parsing: "layers:1")
        o.slidingWindow = 8
        let trainer = try Trainer(o)
        #expect(trainer.config.positions == [.rope, .none] && trainer.config.attentionWindows == [8, nil])
        try trainer.run { _ in }
        try trainer.save()
        let json = try JSONReader.parse(try SmallFile.read(base + "/config.json"))
        // transformers' SmolLM3 applies windows only with use_sliding_window and per layer_types.
        #expect(json["model_type"]?.stringValue == "smollm3" && json["use_sliding_window"]?.boolValue == true)
        #expect(json["layer_types"]?.arrayValue?.compactMap(\.stringValue) == ["sliding_attention", "full_attention"])
        #expect(json["no_rope_layers"]?.arrayValue?.compactMap(\.intValue) == [1, 0] && json["sliding_window"]?.intValue == 8)
        let config = try Checkpoint.open(base).requireConfig()
        #expect(config.positions == [.rope, .none] && config.attentionWindows == [8, nil])
    }

    @Test func aWindowNeedsRoPELayers() {
        var o = TrainerTests.options(NSTemporaryDirectory() + "unused", steps: 1)
        o.slidingWindow = 8
        #expect(throws: TrainerError.windowWithoutRoPE(window: 8, position: "none")) { try Trainer(o) }
    }
}

/// The bundled model organism (fixtures/organism, trained by `nopekit pretrain`; its card
/// records the command): fine at its training length, failing at 4× it, as the paper's NoPE
/// models do.
@Suite struct OrganismTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures/organism").path

    @Test func extrapolationFailsAsThePaperDescribes() throws {
        let checkpoint = try Checkpoint.open(Self.folder)
        let config = try checkpoint.requireConfig()
        #expect(config.positions.allSatisfy { $0 == .none } && config.maxPositionEmbeddings == 256)
        let evaluation = Evaluation(model: try LlamaModel(store: checkpoint.store, config: config, policy: .resident))
        let heldOut = Array(Corpus.generate(seed: 314 &+ 1_000_003, size: 300_000, maxDocument: 512).utf8)
        let short = try evaluation.run(heldOut: heldOut, length: 256, sequences: 12, template: Corpus.passkeyTemplate, seed: 314)
        let long = try evaluation.run(heldOut: heldOut, length: 1024, sequences: 4, template: Corpus.passkeyTemplate, seed: 314)
        let entropyShort = try evaluation.meanEntropy(heldOut: heldOut, length: 256, sequences: 2).reduce(0, +)
        let entropyLong = try evaluation.meanEntropy(heldOut: heldOut, length: 1024, sequences: 2).reduce(0, +)
        print("organism: 256 loss \(short.loss) passkey \(short.passkey); 1024 loss \(long.loss) passkey \(long.passkey); entropy \(entropyShort) → \(entropyLong)")
        #expect((short.passkey ?? 0) >= 0.75, "passkey at the training length")
        #expect(exp(long.loss) >= 1.5 * exp(short.loss), "perplexity at 4× should fail clearly")
        #expect(entropyLong > entropyShort, "attention disperses beyond the training length")
    }
}

/// The hybrid organism (RoPE with a 64-key window on layers 0 and 2, global NoPE on 1 and 3,
/// trained with `--corpus passkey-first`): the card's claims that tests can afford.
@Suite struct HybridOrganismTests {
    static let folder = URL(fileURLWithPath: OrganismTests.folder).deletingLastPathComponent().appendingPathComponent("hybrid-organism").path

    @Test func retrievesBeyondItsTrainingLengthWithFlatPerplexity() throws {
        let checkpoint = try Checkpoint.open(Self.folder)
        let config = try checkpoint.requireConfig()
        #expect(config.positions == [.rope, .none, .rope, .none] && config.attentionWindows == [64, nil, 64, nil])
        #expect(config.maxPositionEmbeddings == 256)
        let template = try PasskeyTemplate.load(Self.folder + "/" + PasskeyTemplate.fileName)
        #expect(Corpus.Style(template: template) == .passkeyFirst)
        let evaluation = Evaluation(model: try LlamaModel(store: checkpoint.store, config: config, policy: .resident))
        let heldOut = Array(Corpus.generate(seed: 314 &+ 1_000_003, size: 300_000, maxDocument: 512, template: template).utf8)
        let short = try evaluation.run(heldOut: heldOut, length: 256, sequences: 10, template: template, seed: 314)
        let double = try evaluation.run(heldOut: heldOut, length: 512, sequences: 20, template: template, seed: 314)
        let long = try evaluation.run(heldOut: heldOut, length: 1024, sequences: 10, template: template, seed: 314)
        print("hybrid organism: passkey \(short.passkey ?? -1) / \(double.passkey ?? -1) / \(long.passkey ?? -1) at 256 / 512 / 1024; loss \(short.loss) → \(long.loss)")
        #expect((double.passkey ?? 0) >= 0.9, "passkey at 2× the training length")
        #expect((long.passkey ?? 0) >= 0.9, "passkey at 4× the training length")
        #expect(exp(long.loss) <= 1.1 * exp(short.loss), "perplexity stays flat at 4×")
    }
}

/// The organism's passkey wording ships beside it, and it is the corpus's.
@Suite struct PasskeyWordingTests {
    @Test func bundledTemplateIsTheCorpusWording() throws {
        let file = try PasskeyTemplate.load(OrganismTests.folder + "/" + PasskeyTemplate.fileName)
        #expect(file == Corpus.passkeyTemplate)
        var r = Corpus.Random(seed: 5)
        let doc = Corpus.passkeyDocument(key: 12345, bytes: 300, depth: 0.5, &r)
        #expect(doc.prompt.hasPrefix(file.task) && doc.prompt.contains(file.needle(key: 12345)) && doc.prompt.hasSuffix(file.question))
        #expect(Corpus.Style(template: file) == .mixed)
    }

    /// passkey-first training sequences: BOS, one whole passkey document in the short wording
    /// (answer included) that fits the sequence, then text; and some of them put more than the
    /// local reach of two 64-key windows (126 bytes) between the key and the answer.
    @Test func passkeyFirstSequencesOpenWithAWholeDocument() throws {
        var o = Trainer.Options(output: "/nonexistent")
        (o.layers, o.hidden, o.heads, o.kvHeads, o.headDim, o.intermediate, o.corpusBytes, o.evalSequences) = (2, 64, 4, 2, 16, 128, 100_000, 4)
        o.corpus = .passkeyFirst
        let trainer = try Trainer(o)
        let t = Corpus.shortPasskeyTemplate
        #expect(Corpus.Style(template: t) == .passkeyFirst && t.task.utf8.count < 40)
        var farthest = 0
        for _ in 0..<200 {
            let tokens = trainer.window(trainer.train, length: 256)
            #expect(tokens.count == 256 && tokens[0] == ByteVocabulary.bos)
            let text = String(decoding: tokens.dropFirst().map { UInt8($0) }, as: UTF8.self)
            #expect(text.hasPrefix(t.task))
            let question = try #require(text.range(of: t.question))
            let answer = text[question.upperBound...].prefix(7)
            #expect(answer.count == 7 && answer.hasPrefix(" ") && answer.hasSuffix("."))
            let key = String(answer.dropFirst().dropLast())
            #expect(text[..<question.lowerBound].contains(t.needle(key: Int(key) ?? -1)))
            let lastKey = try #require(text[..<question.lowerBound].range(of: key, options: .backwards))
            farthest = max(farthest, text.utf8.distance(from: lastKey.lowerBound, to: question.upperBound))
        }
        #expect(farthest > 126)
        // A sequence too short for the shortest document is refused, not looped on.
        o.length = 64
        #expect(throws: TrainerError.tooShortForPasskeyFirst(length: 64, needed: 138)) { try Trainer(o) }
    }
}

/// Pretrain outputs go through the one atomic path: a failed write leaves the previous file
/// and no temporary behind.
@Suite struct ModelFolderTests {
    struct Failure: Error {}

    @Test func failedReplaceKeepsThePreviousFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nopekit-modelfolder-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/TRAINING.md"
        try ModelFolder.replaceText(path, "first\n")
        try ModelFolder.replaceText(path, "second\n")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "second\n")
        #expect(throws: Failure.self) {
            try ModelFolder.replace(path) { temporary in
                try Data("half".utf8).write(to: URL(fileURLWithPath: temporary))
                throw Failure()
            }
        }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "second\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["TRAINING.md"])
    }
}
