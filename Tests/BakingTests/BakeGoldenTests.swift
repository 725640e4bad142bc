@testable import Checkpoints
import Foundation
@testable import Engine
import Testing
@testable import Baking

/// Every format against numpy: fixtures/bake/expected.json (scripts/reference/make_bake_fixtures.py)
/// holds, per source, the SHA-256 of every tensor of the expected output, computed with PyPI
/// safetensors/gguf, numpy and ml_dtypes: scaled F32/F16/BF16 elements as float32 products
/// rounded once to the stored type, quantised blocks with only their fp16 scale fields
/// rewritten as fp16(λ·d); the generator checks those against s·dequantize(source) within the
/// fp16-rounding bound. Untouched tensors must hash as the source's bytes.
@Suite struct BakeGoldenTests {
    static let folder = BakeFixtures.path("fixtures/bake")
    static let expected: JSONValue? = try? JSONReader.parse([UInt8](Data(contentsOf: URL(fileURLWithPath: folder + "/expected.json"))))
    static var cases: [String] {
        guard case .object(let members)? = expected else { return [] }
        return members.map(\.key)
    }

    @Test func everyFormatIsCovered() {
        let gguf = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q6_k"].map { "gguf/tiny-\($0).gguf" }
        #expect(Set(Self.cases) == Set(["st-f32", "st-f16", "st-bf16", "st-sharded", "paper"] + gguf))
    }

    @Test(arguments: BakeGoldenTests.cases)
    func matchesNumpy(_ name: String) throws {
        let spec = try #require(Self.expected?[name])
        let source = try Checkpoint.open(Self.folder + "/" + name)
        let dir = try BakeFixtures.scratch(name)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + (name.hasSuffix(".gguf") ? "/out.gguf" : "/out")
        let scales: BakePlan.Scales = name == "paper" ? .checkpoint
            : .table(try TemperatureTable.load(Self.folder + "/table.temps.json"), file: "table.temps.json")
        let report = try Baker.bake(try BakePlan.make(source, scales: scales), to: out)
        #expect(report.sourceSHA256 == spec["source_sha256"]?.stringValue)

        let baked = try Checkpoint.open(out)
        guard case .object(let tensors)? = spec["tensors"] else { Issue.record("no tensors in expected.json"); return }
        #expect(Set(baked.store.tensors.map(\.name)) == Set(tensors.map(\.key)), "tensor set")
        let worst = Dictionary(uniqueKeysWithValues: report.scaled.map { ($0.name, $0.report?.worstRelativeError) })
        for member in tensors {
            let t = member.value
            let digest = try baked.store.withRawBytes(member.key) { raw -> String in
                let h = SHA256()
                h.update(raw)
                return h.finish()
            }
            #expect(digest == t["sha256"]?.stringValue, "\(name): \(member.key) differs from numpy's")
            #expect(baked.store.lookup(member.key)?.type.name == t["dtype"]?.stringValue)
            if t["changed"]?.boolValue == true, let expected = t["worst_relative_error"]?.doubleValue {
                let ours = try #require(worst[member.key] ?? nil, "\(member.key) is not reported as scaled")
                #expect(abs(ours - expected) <= 1e-9 * max(expected, 1e-12), "\(member.key): worst rounding \(ours) vs numpy \(expected)")
            }
            if let shard = t["shard"]?.stringValue {
                #expect((baked.store.lookup(member.key)?.file as NSString?)?.lastPathComponent == shard)
            }
        }
        if case .array(let files)? = spec["output_files"], !name.hasSuffix(".gguf") {
            #expect(BakeFixtures.listing(out) == (files.compactMap(\.stringValue) + [ChecksumManifest.folderFileName]).sorted())
        }
    }
}

/// Baked low-precision models against the source run with the table at runtime. The baked
/// weights carry one extra rounding (the element's, or a block scale's fp16), so the logits
/// differ by about that unit; the bound asserted is 2 units of the stored precision,
/// relative to the largest logit. Measured values are in docs/benchmarks.md.
@Suite struct BakePrecisionTests {
    @Test(arguments: [("gguf/tiny-f32.gguf", 1e-5), ("gguf/tiny-f16.gguf", 0x1p-10), ("gguf/tiny-bf16.gguf", 0x1p-7),
                      ("gguf/tiny-q8_0.gguf", 0x1p-10), ("gguf/tiny-q4_k.gguf", 0x1p-10), ("st-bf16", 0x1p-7)])
    func bakedLogitsWithinOneRounding(_ name: String, _ bound: Double) throws {
        let source = try Checkpoint.open(BakeGoldenTests.folder + "/" + name)
        let table = try TemperatureTable.load(BakeGoldenTests.folder + "/table.temps.json")
        let dir = try BakeFixtures.scratch(name)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + (name.hasSuffix(".gguf") ? "/out.gguf" : "/out")
        _ = try Baker.bake(try BakePlan.make(source, scales: .table(table, file: "t")), to: out)
        let worst = try BakeFixtures.logitGap(source: source, baked: try Checkpoint.open(out), table: table, length: 24, step: 5, offset: 1).relative
        print("bake precision \(name): max |Δlogit| / max |logit| = \(worst)")
        #expect(worst <= bound, "\(name): \(worst) > \(bound)")
    }
}
