import Baking
import Checkpoints
import Foundation
import Testing
@testable import Conversion
@testable import Engine

/// `bake --format`: a baked model written straight into the other format. Run plainly, it gives
/// the logits of the source run with the table at runtime (the engine applies the scales to the
/// queries, independently of the weights), within the rounding of the stored type; it carries
/// the bake's provenance; and its tensors are exactly what baking in place and then converting
/// writes.
@Suite struct BakedConversionTests {
    static let bakeFolder = ConvertFixtures.path("bake")
    static var table: TemperatureTable { get throws { try TemperatureTable.load(bakeFolder + "/table.temps.json") } }

    /// Max |Δlogit| / max |logit| of `baked` run plainly against `source` run with `table`.
    static func logitGap(source: Checkpoint, baked: Checkpoint, table: TemperatureTable) throws -> Double {
        let config = try source.requireConfig()
        let tokens = [(0..<24).map { ($0 * 5 + 1) % config.vocab }]
        let reference = try LlamaModel(store: source.store, config: config, policy: .resident)
            .forward(ForwardRequest(tokens: tokens, temperatures: table.scales, logitPositions: Array(0..<24))).logits
        let plain = try LlamaModel(store: baked.store, config: try baked.requireConfig(), policy: .resident)
            .forward(ForwardRequest(tokens: tokens, logitPositions: Array(0..<24))).logits
        let scale = reference.map(abs).max() ?? 1
        return Double(zip(reference, plain).map { abs($0 - $1) }.max()! / scale)
    }

    static func bytes(_ store: any TensorStore, _ name: String) throws -> [UInt8] { try store.withRawBytes(name, Array.init) }

    /// Hugging Face F32 → GGUF F32 and Q8_0 (quantised after scaling). The F32 output's logits
    /// are held to the source's run with the table at runtime; a Q8_0 output differs from that
    /// by the quantisation of every weight, so it is held to baking in place and converting.
    @Test(arguments: [GGUFOutputType.f32, .q8_0])
    func huggingFaceToGGUF(_ type: GGUFOutputType) throws {
        let dir = try ConvertFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let source = try Checkpoint.open(Self.bakeFolder + "/st-f32")
        let table = try Self.table
        let plan = try BakePlan.make(source, scales: .table(table, file: "table.temps.json"))
        let out = dir + "/baked.gguf"
        let (report, _) = try BakedConversion.bake(plan, as: .gguf(type), to: out)
        #expect(report.format == "gguf" && report.written)
        #expect(report.changed.count == plan.edits.filter { $0.rowsChanged > 0 }.count && report.changed.count >= 2)

        let baked = try Checkpoint.open(out)
        let gguf = try #require(baked.store as? GGUFFile)
        #expect(gguf.metadata[Provenance.ggufSourceKey]?.stringValue == (try SHA256.file(Self.bakeFolder + "/st-f32/model.safetensors")))
        #expect(try TemperatureTable.decode(JSONReader.parse(Array((gguf.metadata[Provenance.ggufTemperaturesKey]?.stringValue ?? "").utf8)), file: "gguf").scales == table.scales)
        if type == .f32 {
            let gap = try Self.logitGap(source: source, baked: baked, table: table)
            print("bake --format gguf: max |Δlogit| / max |logit| = \(gap)")
            #expect(gap <= 1e-5)
        }

        // The same tensors as baking in place, then converting.
        let inPlace = dir + "/baked-hf"
        _ = try Baker.bake(plan, to: inPlace)
        let export = try GGUFExport.plan(try Checkpoint.open(inPlace), type: type)
        let converted = dir + "/converted.gguf"
        _ = try GGUFWriter.write(metadata: export.metadata, tensors: export.tensors, to: converted)
        let reference = try GGUFFile(path: converted)
        #expect(gguf.tensors.map(\.name) == reference.tensors.map(\.name))
        for info in reference.tensors { #expect(try Self.bytes(gguf, info.name) == Self.bytes(reference, info.name), "\(info.name)") }
    }

    /// GGUF Q8_0 → Hugging Face folder: the scaled blocks, dequantised.
    @Test func ggufToHuggingFace() throws {
        let dir = try ConvertFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let source = try Checkpoint.open(Self.bakeFolder + "/gguf/tiny-q8_0.gguf")
        let table = try Self.table
        let plan = try BakePlan.make(source, scales: .table(table, file: "table.temps.json"))
        let out = dir + "/baked"
        let (report, _) = try BakedConversion.bake(plan, as: .huggingFace(nil), to: out)
        #expect(report.format == "safetensors" && report.copiedFiles.contains("config.json"))

        let baked = try Checkpoint.open(out)
        let sha = try SHA256.file(source.path)
        let config = try JSONReader.parse(try SmallFile.read(out + "/config.json"))
        #expect(config[Provenance.sourceKey]?.stringValue == sha && config[Provenance.temperaturesKey] != nil)
        let shard = try SafetensorsFile(path: out + "/model.safetensors")
        #expect(shard.header.metadataValue(Provenance.sourceKey) == sha)
        // Scaled Q8_0 blocks carry one fp16 rounding of their scales: 2⁻¹⁰ (BakePrecisionTests).
        let gap = try Self.logitGap(source: source, baked: baked, table: table)
        print("bake --format safetensors from Q8_0: max |Δlogit| / max |logit| = \(gap)")
        #expect(gap <= 0x1p-10)
    }

    @Test func refusesTheSourcesOwnFormatAndAnOutputInsideTheInput() throws {
        let source = try Checkpoint.open(Self.bakeFolder + "/st-f32")
        let plan = try BakePlan.make(source, scales: .table(try Self.table, file: "t"))
        #expect(throws: BakeError.formatChange(source: source.path, requested: "safetensors")) {
            try BakedConversion.bake(plan, as: .huggingFace(nil), to: "/tmp/unused-\(UUID().uuidString)")
        }
        #expect(throws: BakeError.self) { try BakedConversion.bake(plan, as: .gguf(nil), to: Self.bakeFolder + "/st-f32/x.gguf") }
    }
}
