@testable import Checkpoints
import Foundation
import Testing
@testable import Baking
@testable import Engine

/// Shared helpers: fixture paths, temporary outputs, tables.
enum BakeFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    /// A fresh empty folder; the output goes inside it.
    static func scratch(_ name: String = #function) throws -> String {
        let dir = NSTemporaryDirectory() + "nopekit-bake-\(getpid())-\(name.filter(\.isLetter))-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Seeded scales in [0.6, 2.5]; one value per layer when `perLayer`.
    static func table(for c: ModelConfig, seed: UInt64, perLayer: Bool = false, skip: Set<Int> = []) -> TemperatureTable {
        var state = seed
        func next() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return 0.6 + 1.9 * Float(state >> 40) / Float(1 << 24)
        }
        let scales: [[Float]?] = (0..<c.layers).map { l in
            if skip.contains(l) { return nil }
            if perLayer { let s = next(); return Array(repeating: s, count: c.heads) }
            return (0..<c.heads).map { _ in next() }
        }
        return TemperatureTable(method: "test", architecture: c.modelType, layers: c.layers, heads: c.heads, headDim: c.headDim, scales: scales)
    }

    /// Logits of `source` run with `table` at runtime and of `baked` run plainly, on one
    /// deterministic sequence of `length` tokens: max |Δ| over max |reference|, and the
    /// reference's scale.
    static func logitGap(source: Checkpoint, baked: Checkpoint, table: TemperatureTable, length: Int, step: Int, offset: Int)
        throws -> (relative: Double, scale: Float, plain: [Float]) {
        let config = try source.requireConfig()
        let tokens = [(0..<length).map { ($0 * step + offset) % config.vocab }]
        let positions = Array(0..<length)
        let reference = try LlamaModel(store: source.store, config: config, policy: .resident)
            .forward(ForwardRequest(tokens: tokens, temperatures: table.scales, logitPositions: positions)).logits
        let plain = try LlamaModel(store: baked.store, config: try baked.requireConfig(), policy: .resident)
            .forward(ForwardRequest(tokens: tokens, logitPositions: positions)).logits
        let scale = reference.map(abs).max() ?? 1
        let worst = zip(reference, plain).map { abs($0 - $1) }.max() ?? 0
        return (Double(worst / scale), scale, plain)
    }

    /// The files under `dir`, hidden ones included (a partial output would show here).
    static func listing(_ dir: String) -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted() }
}

@Suite struct BakeEquivalenceTests {
    /// Baking the table and running the baked model plainly gives the logits of the source run
    /// with the table at runtime. Cases: NoPE with GQA, q and o biases with tied embeddings,
    /// a hybrid SmolLM3 pattern, a sliding-window hybrid, and a shared q-norm (per-layer table).
    @Test(arguments: ["nope_lambda", "llama_gqa4_tied_bias", "smollm3_every4", "window_hybrid", "qknorm_nope"])
    func bakedLogitsEqualRuntimeScaling(_ name: String) throws {
        let source = try Checkpoint.open(BakeFixtures.path("fixtures/engine/\(name)"))
        let config = try source.requireConfig()
        let perLayer = BakeTarget.of(config, store: source.store) == .sharedQueryNorm
        let table = BakeFixtures.table(for: config, seed: 7, perLayer: perLayer, skip: [0])
        let dir = try BakeFixtures.scratch(name)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/baked"
        let report = try Baker.bake(try BakePlan.make(source, scales: .table(table, file: "t")), to: out)
        #expect(report.changed.count == (config.layers - 1) * (perLayer ? 1 : (config.attentionBias ? 2 : 1)))

        let baked = try Checkpoint.open(out)
        let (gap, scale, plain) = try BakeFixtures.logitGap(source: source, baked: baked, table: table, length: 40, step: 7, offset: 3)
        // F32: the only difference is where λ is rounded (into W_q once, or onto q·k each time).
        #expect(gap <= 1e-5, "\(name): max |Δlogit| / max |logit| = \(gap)")
        let tokens = [(0..<40).map { ($0 * 7 + 3) % config.vocab }]
        let unscaled = try LlamaModel(store: source.store, config: config, policy: .resident)
            .forward(ForwardRequest(tokens: tokens, logitPositions: Array(0..<40))).logits
        #expect(zip(unscaled, plain).map { abs($0 - $1) }.max()! / scale > 1e-3, "the table must change the model")
    }
}

@Suite struct BakeIdentityAndRefusalTests {
    static let organism = BakeFixtures.path("fixtures/organism")

    /// s_h = 1 everywhere: every tensor byte equals the source's.
    @Test func unitScalesCopyEveryByte() throws {
        let source = try Checkpoint.open(Self.organism)
        let config = try source.requireConfig()
        var table = BakeFixtures.table(for: config, seed: 1)
        table.scales = table.scales.map { $0.map { $0.map { _ in 1 } } }
        let dir = try BakeFixtures.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let plan = try BakePlan.make(source, scales: .table(table, file: "ones"))
        #expect(plan.isIdentity)
        _ = try Baker.bake(plan, to: dir + "/out")
        let baked = try Checkpoint.open(dir + "/out")
        #expect(baked.store.tensors.map(\.name) == source.store.tensors.map(\.name))
        for t in source.store.tensors {
            let a = try source.store.withRawBytes(t.name) { Array($0) }
            let b = try baked.store.withRawBytes(t.name) { Array($0) }
            #expect(a == b, "\(t.name)")
        }
    }

    /// The output records the table and the source's SHA-256 (the file's own, for one file).
    @Test func recordsProvenance() throws {
        let source = try Checkpoint.open(Self.organism)
        let table = BakeFixtures.table(for: try source.requireConfig(), seed: 2)
        let dir = try BakeFixtures.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let report = try Baker.bake(try BakePlan.make(source, scales: .table(table, file: "t")), to: dir + "/out")
        let expected = try SHA256.file(Self.organism + "/model.safetensors")
        #expect(report.sourceSHA256 == expected)
        let file = try SafetensorsFile(path: dir + "/out/model.safetensors")
        #expect(file.header.metadataValue(Provenance.sourceKey) == expected)
        #expect(file.header.metadataValue("format") == "pt")
        let recorded = try TemperatureTable.decode(try JSONReader.parse(Array(file.header.metadataValue(Provenance.temperaturesKey)!.utf8)), file: "meta")
        #expect(recorded.scales == table.scales)
        let config = try JSONReader.parse([UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/out/config.json"))))
        #expect(config[Provenance.sourceKey]?.stringValue == expected && config[Provenance.temperaturesKey]?["scales"] != nil)
        // Every other field is the source's (the organism is a SmolLM3 config with no RoPE layer).
        let sourceConfig = try JSONReader.parse([UInt8](try Data(contentsOf: URL(fileURLWithPath: Self.organism + "/config.json"))))
        #expect(config["model_type"]?.stringValue == "smollm3" && config["model_type"] == sourceConfig["model_type"])
        #expect(config["no_rope_layers"] == sourceConfig["no_rope_layers"] && config["nopekit_position"]?.stringValue == "none")
        for f in ["tokenizer.json", "tokenizer_config.json", "TRAINING.md"] {
            #expect(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/out/\(f)")) == Data(contentsOf: URL(fileURLWithPath: "\(Self.organism)/\(f)")))
        }
        // Baking the baked model again would multiply the scales: refused.
        #expect(throws: BakeError.alreadyBaked(source: dir + "/out")) {
            try BakePlan.make(try Checkpoint.open(dir + "/out"), scales: .table(table, file: "t"))
        }
    }

    /// A source checksum remembered from an earlier run goes into the headers at once (no
    /// rewrite, so the output is hashed while it is written); one still being computed is
    /// written in afterwards. Both give the same bytes, checksum records included.
    @Test func aRememberedSourceChecksumGivesTheSameOutput() throws {
        let source = try Checkpoint.open(Self.organism)
        let plan = try BakePlan.make(source, scales: .table(BakeFixtures.table(for: try source.requireConfig(), seed: 5), file: "t"))
        let dir = try BakeFixtures.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let files = [Self.organism + "/model.safetensors"]
        let none = ChecksumCache(folder: nil), filled = ChecksumCache(folder: dir + "/cache", racyWindow: 0)
        _ = try filled.sha256(of: files[0])
        let (hashing, remembered) = (BackgroundChecksum(files: files, cache: none), BackgroundChecksum(files: files, cache: filled))
        hashing.finish()
        let digest = try SHA256.file(files[0])
        #expect(hashing.known == nil && remembered.known == digest)
        _ = try Baker.bake(plan, to: dir + "/late", checksumCache: none)
        _ = try Baker.bake(plan, to: dir + "/known", checksumCache: filled)
        let names = BakeFixtures.listing(dir + "/late")
        #expect(names.contains(ChecksumManifest.folderFileName) && names == BakeFixtures.listing(dir + "/known"))
        for name in names {
            let (a, b) = (try Data(contentsOf: URL(fileURLWithPath: "\(dir)/late/\(name)")), try Data(contentsOf: URL(fileURLWithPath: "\(dir)/known/\(name)")))
            #expect(a == b, "\(name)")
        }
    }

    /// Side files are copied only when they are regular files inside the model folder (or its
    /// Hugging Face cache blobs): a link to /etc/hostname stays behind (issue 13).
    @Test func copiesOnlyCompanionFilesInsideTheFolder() throws {
        let dir = try BakeFixtures.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // a Hugging Face cache layout: snapshots/<rev>/* are links into blobs/
        let snapshot = dir + "/models--x--y/snapshots/abc", blobs = dir + "/models--x--y/blobs"
        try FileManager.default.createDirectory(atPath: snapshot, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: blobs, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            try FileManager.default.copyItem(atPath: Self.organism + "/" + f, toPath: blobs + "/" + f + ".blob")
            try FileManager.default.createSymbolicLink(atPath: snapshot + "/" + f, withDestinationPath: "../../blobs/" + f + ".blob")
        }
        try FileManager.default.createSymbolicLink(atPath: snapshot + "/special_tokens_map.json", withDestinationPath: "/etc/hostname")
        let source = try Checkpoint.open(snapshot)
        let table = BakeFixtures.table(for: try source.requireConfig(), seed: 3)
        let report = try Baker.bake(try BakePlan.make(source, scales: .table(table, file: "t")), to: dir + "/out")
        #expect(BakeFixtures.listing(dir + "/out") == ["SHA256SUMS", "config.json", "model.safetensors", "tokenizer.json"])
        #expect(report.skippedFiles.contains { $0.hasPrefix("special_tokens_map.json") })
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/out/tokenizer.json")) == Data(contentsOf: URL(fileURLWithPath: Self.organism + "/tokenizer.json")))
    }

    @Test func refusesATableOfAnotherShape() throws {
        let source = try Checkpoint.open(Self.organism)
        let config = try source.requireConfig()
        var table = BakeFixtures.table(for: config, seed: 3)
        table.heads += 1
        table.scales = table.scales.map { $0.map { $0 + [1] } }
        #expect(throws: TemperatureTableError.self) { try BakePlan.make(source, scales: .table(table, file: "wide.temps.json")) }
        var short = BakeFixtures.table(for: config, seed: 3)
        short.layers -= 1
        short.scales.removeLast()
        #expect(throws: TemperatureTableError.self) { try BakePlan.make(source, scales: .table(short, file: "short.temps.json")) }
    }

    /// A per-head table cannot go into a q-norm weight shared by the heads; a per-layer one can.
    @Test func sharedQueryNormTakesPerLayerTablesOnly() throws {
        let source = try Checkpoint.open(BakeFixtures.path("fixtures/engine/qknorm_nope"))
        let config = try source.requireConfig()
        #expect(BakeTarget.of(config, store: source.store) == .sharedQueryNorm)
        #expect(throws: BakeError.perHeadTableForSharedNorm(table: "head.temps.json", layer: 0)) {
            try BakePlan.make(source, scales: .table(BakeFixtures.table(for: config, seed: 4), file: "head.temps.json"))
        }
        let plan = try BakePlan.make(source, scales: .table(BakeFixtures.table(for: config, seed: 4, perLayer: true), file: "layer"))
        #expect(plan.edits.allSatisfy { $0.info.name.hasSuffix("q_norm.weight") })
    }

    /// Llama 4's temperature grows with the position: no constant can express it.
    @Test func refusesPositionDependentTemperatures() throws {
        let organism = try Checkpoint.open(Self.organism)
        var config = try organism.requireConfig()
        config.temperatureTuning = TemperatureTuning(floorScale: 8192, attnScale: 0.1)
        let checkpoint = Checkpoint(path: "llama4-like", format: .huggingFaceFolder, store: organism.store, folder: Self.organism,
                                    config: config, configProblem: nil, configPath: nil)
        #expect(BakeTarget.of(config, store: organism.store).isBakeable == false)
        #expect(throws: BakeError.self) { try BakePlan.make(checkpoint, scales: .table(BakeFixtures.table(for: config, seed: 5), file: "t")) }
    }

    @Test func refusesAnOutputInsideTheInput() throws {
        let source = try Checkpoint.open(Self.organism)
        let plan = try BakePlan.make(source, scales: .table(BakeFixtures.table(for: try source.requireConfig(), seed: 6), file: "t"))
        let before = BakeFixtures.listing(Self.organism)
        #expect(throws: BakeError.outputInsideInput(output: Self.organism + "/baked", input: Self.organism)) {
            try Baker.bake(plan, to: Self.organism + "/baked")
        }
        #expect(throws: BakeError.outputInsideInput(output: Self.organism, input: Self.organism)) { try Baker.bake(plan, to: Self.organism) }
        #expect(BakeFixtures.listing(Self.organism) == before)
    }

    /// A scale that overflows F16 is found while writing: the bake fails naming the tensor and
    /// row, and neither the output nor a partial file is left behind.
    @Test func overflowMidWriteLeavesNothing() throws {
        let dir = try BakeFixtures.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // An F16 copy of the organism, made with our own (tested) converter.
        let source = try Checkpoint.open(Self.organism)
        let f16 = dir + "/f16.safetensors"
        try SafetensorsWriter.write(try source.store.tensors.map { try TensorRetyping.output($0, from: source.store, target: .f16) },
                                    metadata: [:], to: f16)
        try FileManager.default.copyItem(atPath: Self.organism + "/config.json", toPath: dir + "/config.json")
        let checkpoint = try Checkpoint.open(f16)
        var table = BakeFixtures.table(for: try checkpoint.requireConfig(), seed: 8)
        table.scales[3] = Array(repeating: 1e6, count: table.heads)
        let plan = try BakePlan.make(checkpoint, scales: .table(table, file: "t"))
        let before = BakeFixtures.listing(dir)
        do {
            _ = try Baker.bake(plan, to: dir + "/out.safetensors")
            Issue.record("an overflowing scale must fail")
        } catch let error as BakeError {
            guard case .cannotScale(_, let tensor, let reason) = error else { Issue.record("\(error)"); return }
            #expect(tensor == "model.layers.3.self_attn.q_proj.weight" && reason.contains("overflows F16"))
        }
        #expect(BakeFixtures.listing(dir) == before)
    }

    /// A bake that fails while the source is still being hashed stops the hash before it
    /// returns: exiting with libcrypto busy on another thread crashed in its exit handlers
    /// (exit 139 instead of the error message, about one run in six, when the output existed).
    @Test func failingBakeStopsTheBackgroundChecksum() throws {
        let dir = try BakeFixtures.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let big = dir + "/big.bin"
        #expect(FileManager.default.createFile(atPath: big, contents: nil))
        #expect(truncate(big, 1 << 30) == 0)  // 1 GiB, sparse: seconds to hash
        let checksum = BackgroundChecksum(files: [big])
        checksum.finish()
        // Stopped, not waited out: a hash that ran to the end would return its digest here.
        #expect(throws: CancellationError.self) { try checksum.wait() }
    }
}
