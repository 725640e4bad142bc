import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

/// The command line as a user sees it: golden help and JSON, exit codes, error messages, and
/// the OpenBLAS re-exec on a real process.
@Suite(.serialized) struct CLITests {
    @Test(arguments: [
        ("nopekit.help.txt", ["--help"]), ("inspect.help.txt", ["inspect", "--help"]),
        ("convert.help.txt", ["convert", "--help"]), ("doctor.help.txt", ["doctor", "--help"]),
        ("tokenize.help.txt", ["tokenize", "--help"]), ("score.help.txt", ["score", "--help"]), ("bench-forward.help.txt", ["bench", "forward", "--help"]),
        ("pretrain.help.txt", ["pretrain", "--help"]), ("corpus.help.txt", ["corpus", "--help"]), ("bench-train.help.txt", ["bench", "train", "--help"]),
        ("search.help.txt", ["search", "--help"]), ("bench-search.help.txt", ["bench", "search", "--help"]),
        ("bake.help.txt", ["bake", "--help"]), ("bench-bake.help.txt", ["bench", "bake", "--help"]),
        ("verify.help.txt", ["verify", "--help"]), ("extend.help.txt", ["extend", "--help"]),
    ])
    func helpMatchesGolden(_ golden: String, _ arguments: [String]) throws {
        let r = try CLIRunner.run(arguments)
        #expect(r.status == 0)
        #expect(r.stdout == (try CLIRunner.golden(golden, actual: r.stdout)))
    }

    /// `extend` on the organism end to end, shortened: the output folder holds the table, the
    /// patched model (which a second `verify` finds equal to the source with the table) and a
    /// report whose HTML and SVG parse as XML; a wrong table fails the equivalence loudly.
    @Test func extendThenVerify() throws {
        let dir = URL(fileURLWithPath: try CLIRunner.temporaryFolder())
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = dir.appendingPathComponent("calib.txt").path, out = dir.appendingPathComponent("out").path
        try String(repeating: "The grass is green. The pass key is 12345. Remember it. Here we go. Lena found the map at noon. ", count: 80)
            .write(toFile: text, atomically: true, encoding: .utf8)
        let r = try CLIRunner.run(["extend", "fixtures/organism", "--data", text, "--method", "uniform", "--target-length", "512",
                                   "--lengths", "256,512", "--max-tokens", "256", "--passkey-trials", "1", "--out", out, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect((json["equivalence"] as? [String: Any])?["passed"] as? Bool == true)
        #expect((json["subjects"] as? [Any])?.count == 2)
        for file in ["scales.temps.json", "model/model.safetensors", "model/passkey_prompt.json", "report/report.html",
                     "report/verify.json", "report/perplexity.csv", "report/passkey.csv", "report/perplexity.svg", "report/scales.svg"] {
            #expect(FileManager.default.fileExists(atPath: out + "/" + file), "\(file) missing")
        }
        for page in ["report/report.html", "report/perplexity.svg", "report/passkey-patched.svg"] {
            let parser = XMLParser(data: try Data(contentsOf: URL(fileURLWithPath: out + "/" + page).resolvingSymlinksInPath()))
            #expect(parser.parse(), "\(page) is not well-formed XML: \(String(describing: parser.parserError))")
        }
        // verify the baked model against the source: equal; against a table it was not baked with: refused
        let v = try CLIRunner.run(["verify", out + "/model", "--baseline", "fixtures/organism", "--temps", out + "/scales.temps.json",
                                   "--data", text, "--lengths", "256", "--max-tokens", "128", "--no-passkey", "--no-entropy"])
        #expect(v.status == 0 && v.stderr.contains("equal within rounding"), "\(v.stderr)")
        let bad = try CLIRunner.run(["verify", out + "/model", "--baseline", "fixtures/organism", "--temps", "fixtures/verify/organism.temps.json",
                                     "--data", text, "--lengths", "256", "--max-tokens", "128", "--no-passkey", "--no-entropy"])
        #expect(bad.status == 1 && bad.stderr.contains("NOT EQUAL"), "\(bad.stderr)")
        let again = try CLIRunner.run(["extend", "fixtures/organism", "--data", text, "--out", out])
        #expect(again.status == 64 && again.stderr.contains("exists"))
        // The whole output records its checksums, the baked model its own too (issue 13).
        let check = try CLIRunner.run(["inspect", "--verify", out])
        #expect(check.status == 0 && check.stdout.contains("checksums: ") && check.stdout.contains("values: not scanned"), "\(check.stdout)\(check.stderr)")
        let model = try CLIRunner.run(["inspect", "--verify", out + "/model"])
        #expect(model.status == 0 && model.stdout.contains("all finite"), "\(model.stdout)\(model.stderr)")
    }

    /// `inspect --verify`: a written output checks clean; one NaN written over a weight is
    /// reported twice, as a file that differs from its record and by its tensor's name; a
    /// checkpoint with no record is scanned only (issue 13).
    @Test func inspectVerifyFindsDamageAndNonFiniteWeightsByName() throws {
        let dir = try CLIRunner.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/hf"
        let convert = try CLIRunner.run(["convert", "fixtures/organism", out, "--dtype", "f32"])
        #expect(convert.status == 0, "\(convert.stderr)")
        let clean = try CLIRunner.run(["inspect", "--verify", out])
        #expect(clean.status == 0 && clean.stdout.contains("checksums: 4 of 4 files match") && clean.stdout.contains("all finite"), "\(clean.stdout)")
        // One file of a folder output is checked against its line of the folder's record.
        let one = try CLIRunner.run(["inspect", "--verify", out + "/model.safetensors"])
        #expect(one.status == 0 && one.stdout.contains("checksums: 1 of 1 files match \(out)/SHA256SUMS"), "\(one.stdout)\(one.stderr)")

        // Locate model.norm.weight with Foundation's JSON parser (not nopekit's reader) and write
        // a float NaN over its third element.
        let file = out + "/model.safetensors"
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
        let headerLength = Int(bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        let header = try #require(try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + headerLength)])) as? [String: Any])
        let entry = try #require(header["model.norm.weight"] as? [String: Any])
        #expect(entry["dtype"] as? String == "F32")
        let start = 8 + headerLength + (try #require((entry["data_offsets"] as? [Int])?.first)) + 2 * 4
        bytes.replaceSubrange(start..<(start + 4), with: [0x00, 0x00, 0xC0, 0x7F])
        try Data(bytes).write(to: URL(fileURLWithPath: file))

        let damaged = try CLIRunner.run(["inspect", "--verify", out])
        #expect(damaged.status == 1, "\(damaged.stderr)")
        #expect(damaged.stdout.contains("model.safetensors differs from its record"), "\(damaged.stdout)")
        #expect(damaged.stdout.contains("model.norm.weight: 1 non-finite value, the first at flat index 2"), "\(damaged.stdout)")
        #expect(damaged.stderr.contains("1 file differs") && damaged.stderr.contains("1 tensor holds NaN"), "\(damaged.stderr)")
        let oneDamaged = try CLIRunner.run(["inspect", "--verify", out + "/model.safetensors"])
        #expect(oneDamaged.status == 1 && oneDamaged.stdout.contains("checksums: 0 of 1 files match"), "\(oneDamaged.stdout)")
        let json = try CLIRunner.run(["inspect", "--verify", out, "--json"])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(json.status == 1 && report["problems"] as? Int == 2)

        let unrecorded = try CLIRunner.run(["inspect", "--verify", "fixtures/organism"])
        #expect(unrecorded.status == 0 && unrecorded.stdout.contains("none recorded") && unrecorded.stdout.contains("all finite"), "\(unrecorded.stdout)")
        let both = try CLIRunner.run(["inspect", "--verify", "--tensors", out])
        #expect(both.status == 64)
    }

    /// `extend` on a quantised GGUF (Q4_K, no tokenizer: token-file data, no passkey): the search
    /// reads the blocks, the bake edits their scales in place, the output is a Q4_K GGUF again,
    /// and it equals the source run with the table within the fp16 rounding of the scales.
    @Test func extendKeepsAQuantisedGGUF() throws {
        let dir = URL(fileURLWithPath: try CLIRunner.temporaryFolder())
        defer { try? FileManager.default.removeItem(at: dir) }
        var x: UInt64 = 7
        let ids = (0..<3000).map { _ -> Int in x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407; return Int(x >> 59) }
        let data = dir.appendingPathComponent("tokens.json").path, out = dir.appendingPathComponent("out").path
        try Data("[\(ids.map(String.init).joined(separator: ","))]".utf8).write(to: URL(fileURLWithPath: data))
        let r = try CLIRunner.run(["extend", "fixtures/bake/gguf/tiny-q4_k.gguf", "--position", "none", "--data", data, "--method", "uniform",
                                   "--target-length", "128", "--lengths", "64,128", "--max-tokens", "64", "--no-passkey", "--out", out, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let equivalence = try #require(json["equivalence"] as? [String: Any])
        #expect(equivalence["passed"] as? Bool == true && equivalence["stored_type"] as? String == "Q4_K", "\(equivalence)")
        let inspect = try CLIRunner.run(["inspect", out + "/tiny-q4_k.gguf", "--json"])
        #expect(inspect.status == 0 && inspect.stdout.contains("\"Q4_K\""), "\(inspect.stderr)")
    }

    /// A non-UTF-8 text gets an error naming the file, not Foundation's bare error code (issue 13).
    @Test func scoreNamesANonUTF8Text() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("nopekit-latin1-\(getpid()).txt").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data([0x63, 0x61, 0x66, 0xE9, 0x20, 0xFF]).write(to: URL(fileURLWithPath: path))
        let r = try CLIRunner.run(["score", "fixtures/organism", "--text", path])
        #expect(r.status == 1 && r.stderr.contains(path) && r.stderr.contains("not UTF-8") && !r.stderr.contains("NSCocoaErrorDomain"), "\(r.stderr)")
    }

    /// Names and values quoted from a file reach the terminal escaped: an ESC in a dtype must
    /// not clear the screen (issue 13).
    @Test func errorMessagesEscapeControlCharacters() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("nopekit-esc-\(getpid()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var header = Array(#"{"w":{"dtype":"\u001b[2J","shape":[1],"data_offsets":[0,4]}}"#.utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        var bytes = withUnsafeBytes(of: UInt64(header.count).littleEndian, Array.init) + header
        bytes += [0, 0, 0, 0]
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let r = try CLIRunner.run(["inspect", path])
        #expect(r.status == 1 && !r.stderr.contains("\u{1B}") && r.stderr.contains("\\u{1b}"), "\(r.stderr.debugDescription)")
    }

    /// A tensor of 100,000 dimensions took 10 minutes in `inspect --tensors` (a regex trimmed
    /// the table's lines; issue 13): now it is printed in well under the timeout.
    @Test func inspectTensorsIsLinearInTheNumberOfDimensions() throws {
        let path = NSTemporaryDirectory() + "nopekit-dims-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        var header = Array(("{\"w\":{\"dtype\":\"F32\",\"shape\":[" + Array(repeating: "1", count: 100_000).joined(separator: ",") + "],\"data_offsets\":[0,4]}}").utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        try Data(withUnsafeBytes(of: UInt64(header.count).littleEndian, Array.init) + header + [0, 0, 0, 0]).write(to: URL(fileURLWithPath: path))
        let r = try CLIRunner.run(["inspect", path, "--tensors"], timeout: 20)
        #expect(r.status == 0, "\(r.status) \(r.stderr.prefix(200))")
        #expect(r.stdout.contains("1, 1]"))
    }

    /// A FIFO or a device where a file is expected is refused by name, never opened for a
    /// blocking read (issue 13: a FIFO as input hung forever, /dev/zero read without end).
    @Test func specialFilesAreRefusedWithoutHanging() throws {
        let dir = try CLIRunner.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(mkfifo(dir + "/m.safetensors", 0o600) == 0)
        let input = try CLIRunner.run(["inspect", dir + "/m.safetensors"], timeout: 30)
        #expect(input.status == 1 && input.stderr.contains("not a regular file"), "\(input.status) \(input.stderr)")
        try FileManager.default.createDirectory(atPath: dir + "/model", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "fixtures/organism/model.safetensors", toPath: dir + "/model/model.safetensors")
        #expect(mkfifo(dir + "/model/config.json", 0o600) == 0)
        let config = try CLIRunner.run(["score", dir + "/model", "--tokens", "/dev/zero"], timeout: 30)
        #expect(config.status == 1 && config.stderr.contains("not a regular file"), "\(config.status) \(config.stderr)")
        try FileManager.default.removeItem(atPath: dir + "/model/config.json")
        try FileManager.default.copyItem(atPath: "fixtures/organism/config.json", toPath: dir + "/model/config.json")
        let tokens = try CLIRunner.run(["score", dir + "/model", "--tokens", "/dev/zero"], timeout: 30)
        #expect(tokens.status == 1 && tokens.stderr.contains("/dev/zero") && tokens.stderr.contains("not a regular file"), "\(tokens.status) \(tokens.stderr)")
    }

    /// A uniform search end to end: the table is written, fits the model, records the losses
    /// before and after, and a second run refuses to overwrite it; an all-RoPE reading of the
    /// model has no NoPE layer to search.
    @Test func searchWritesATable() throws {
        let dir = URL(fileURLWithPath: try CLIRunner.temporaryFolder())
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = dir.appendingPathComponent("calib.txt").path, out = dir.appendingPathComponent("t.temps.json").path
        try String(repeating: "The grass is green. The pass key is 12345. Remember it. Here we go. ", count: 60)
            .write(toFile: text, atomically: true, encoding: .utf8)
        let args = ["search", "fixtures/organism", "--method", "uniform", "--data", text, "--target-length", "128",
                    "--eval-sequences", "1", "--out", out]
        let r = try CLIRunner.run(args + ["--json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("before: loss") && r.stderr.contains("after: loss"))
        let written = try Data(contentsOf: URL(fileURLWithPath: out))
        let table = try #require(try JSONSerialization.jsonObject(with: written) as? [String: Any])
        #expect(table["method"] as? String == "uniform" && table["target_length"] as? Int == 128 && table["training_length"] as? Int == 256)
        #expect((table["scales"] as? [Any])?.count == 4)
        #expect(((table["search"] as? [String: Any])?["loss_after"] as? [String: Any])?["target"] as? Double != nil)
        #expect((table["model"] as? [String: Any])?["source_sha256"] as? String == "3e9dbfd98999edf8b582b517277e46d1086e79be623e40ba4da1d84b1989ee80")
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == String(decoding: written, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        let again = try CLIRunner.run(args)
        #expect(again.status == 64 && again.stderr.contains("exists"))
        let rope = try CLIRunner.run(["search", "fixtures/organism", "--position", "rope", "--data", text, "--target-length", "128",
                                      "--out", dir.appendingPathComponent("r.temps.json").path])
        #expect(rope.status != 0 && rope.stderr.contains("no NoPE layers"))
    }

    /// `bake`: a dry run reports without writing; a real run writes the folder and says what it
    /// scaled; a table of another shape is refused with the file named and nothing written.
    @Test func bakeWritesAPatchedFolder() throws {
        let dir = URL(fileURLWithPath: try CLIRunner.temporaryFolder())
        defer { try? FileManager.default.removeItem(at: dir) }
        let table = dir.appendingPathComponent("t.temps.json").path, out = dir.appendingPathComponent("baked").path
        let rows = (0..<4).map { l in l == 0 ? "null" : "[" + (0..<6).map { "\(1.0 + 0.25 * Double($0 + l))" }.joined(separator: ", ") + "]" }
        try #"{"format": "nopekit.temperatures/1", "method": "headscale", "model": {"architecture": "llama", "layers": 4, "heads": 6, "head_dim": 32}, "scales": [\#(rows.joined(separator: ", "))]}"#
            .write(toFile: table, atomically: true, encoding: .utf8)
        let dry = try CLIRunner.run(["bake", "fixtures/organism", "--temps", table, "--out", out, "--dry-run", "--json"])
        #expect(dry.status == 0, "\(dry.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(dry.stdout.utf8)) as? [String: Any])
        #expect(report["written"] as? Bool == false && report["tensors_changed"] as? Int == 3 && report["target"] as? String == "q_proj_rows")
        #expect(!FileManager.default.fileExists(atPath: out))
        let r = try CLIRunner.run(["bake", "fixtures/organism", "--temps", table, "--out", out])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("model.layers.3.self_attn.q_proj.weight") && r.stderr.contains("3 scaled"))
        #expect(FileManager.default.fileExists(atPath: out + "/model.safetensors") && FileManager.default.fileExists(atPath: out + "/config.json"))
        let wide = dir.appendingPathComponent("wide.temps.json").path
        try String(contentsOfFile: table, encoding: .utf8).replacingOccurrences(of: "\"heads\": 6", with: "\"heads\": 5").write(toFile: wide, atomically: true, encoding: .utf8)
        let refused = try CLIRunner.run(["bake", "fixtures/organism", "--temps", wide, "--out", out + "2"])
        #expect(refused.status != 0 && refused.stderr.contains("wide.temps.json") && !FileManager.default.fileExists(atPath: out + "2"))
        let neither = try CLIRunner.run(["bake", "fixtures/organism", "--out", out + "3"])
        #expect(neither.status == 64 && neither.stderr.contains("--temps"))
    }

    @Test func inspectJSONMatchesGolden() throws {
        let r = try CLIRunner.run(["inspect", "fixtures/safetensors/sharded", "--json", "--tensors"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == (try CLIRunner.golden("inspect.sharded.json", actual: r.stdout)))
    }

    @Test func inspectTextMatchesGolden() throws {
        let r = try CLIRunner.run(["inspect", "fixtures/safetensors/sharded", "--position", "every:2"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("every:2: 1 of 3 layers NoPE; from --position every:2"))
        #expect(r.stdout == (try CLIRunner.golden("inspect.sharded.txt", actual: r.stdout)))
    }

    @Test func inspectRefusesMalformedFilesNamingThem() throws {
        let r = try CLIRunner.run(["inspect", "fixtures/safetensors/malformed/overlap_offsets.safetensors"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("overlap_offsets.safetensors") && r.stderr.contains("overlap"))
        #expect(r.stdout.isEmpty)
    }

    @Test func positionOverrideErrors() throws {
        let bad = try CLIRunner.run(["inspect", "fixtures/safetensors/sharded", "--position", "sometimes"])
        #expect(bad.status == 64)
        #expect(bad.stderr.contains("every:N"))
        let outOfRange = try CLIRunner.run(["inspect", "fixtures/safetensors/sharded", "--position", "layers:5"])
        #expect(outOfRange.status == 1)
        #expect(outOfRange.stderr.contains("names layer 5 but the model has 3 layers"))
    }

    @Test func convertValidatesItsOptions() throws {
        let size = try CLIRunner.run(["convert", "fixtures/safetensors/sharded", "/tmp/x", "--max-shard-size", "lots"])
        #expect(size.status == 64 && size.stderr.contains("not a size"))
        let single = try CLIRunner.run(["convert", "fixtures/safetensors/sharded", "/tmp/x.safetensors", "--max-shard-size", "1G"])
        #expect(single.status == 64 && single.stderr.contains("needs a folder output"))
        let type = try CLIRunner.run(["convert", "fixtures/safetensors/sharded", "/tmp/x", "--dtype", "f8"])
        #expect(type.status == 64)
    }

    /// --dtype used to copy F4/F6 tensors unchanged without a word (issue 13).
    @Test func convertRefusesToRetypePackedFloats() throws {
        let out = NSTemporaryDirectory() + "nopekit-f4-\(UUID().uuidString).safetensors"
        let r = try CLIRunner.run(["convert", "fixtures/safetensors/dtypes.safetensors", out, "--dtype", "f16"])
        #expect(r.status == 1 && r.stderr.contains("F4 (packed sub-byte floats)"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test func convertRefusesToOverwrite() throws {
        let r = try CLIRunner.run(["convert", "fixtures/safetensors/dtypes.safetensors", "fixtures/safetensors/dtypes.expected.safetensors"])
        #expect(r.status == 1 && r.stderr.contains("already exists"))
    }

    @Test func convertsAFolderToBF16() throws {
        let out = NSTemporaryDirectory() + "nopekit-cli-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let r = try CLIRunner.run(["convert", "fixtures/safetensors/sharded", out, "--dtype", "bf16", "--max-shard-size", "30KB"])
        #expect(r.status == 0, "\(r.stderr)")
        let files = try FileManager.default.contentsOfDirectory(atPath: out).sorted()
        #expect(files.contains("config.json") && files.contains("model.safetensors.index.json"))
        #expect(files.filter { $0.hasSuffix(".safetensors") }.count >= 2)
        let inspect = try CLIRunner.run(["inspect", out, "--json"])
        #expect(inspect.stdout.contains("\"BF16\"") && inspect.stdout.contains("\"model_type\": \"llama\""))
    }

    @Test func doctorReportsTheCoreInUse() throws {
        let r = try CLIRunner.run(["doctor", "--json", "--seconds", "0.2", "--size", "256"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("\"blas_core\"") && r.stdout.contains("\"sgemm_gflops\""))
        #expect(r.stdout.contains("\"blas_core_generic\": false"))
    }

    /// A weaker kernel family pinned in the environment is replaced, with a note, unless the
    /// user passes --no-blas-check.
    @Test(.enabled(if: HostCPU.hasAVX512, "the upgrade to SkylakeX needs AVX-512 BW and DQ"))
    func upgradesAWeakPinnedCore() throws {
        let r = try CLIRunner.run(["doctor", "--json", "--seconds", "0.1", "--size", "128"],
                                  environment: ["OPENBLAS_CORETYPE": "Haswell", "NOPEKIT_BLAS_REEXEC": nil])
        #expect(r.stdout.contains("\"blas_core\": \"SkylakeX\"") && r.stdout.contains("\"reexecuted\": true"))
        #expect(r.stderr.contains("note: OPENBLAS_CORETYPE=Haswell is weaker than this CPU supports; using SkylakeX"))
        let kept = try CLIRunner.run(["doctor", "--json", "--seconds", "0.1", "--size", "128", "--no-blas-check"],
                                     environment: ["OPENBLAS_CORETYPE": "Haswell", "NOPEKIT_BLAS_REEXEC": nil])
        #expect(kept.stdout.contains("\"blas_core\": \"Haswell\"") && kept.stdout.contains("\"stronger_core\": \"SkylakeX\""))
    }

    /// The real re-exec: with the test hook the loaded core counts as generic, so nopekit must
    /// re-execute itself with OPENBLAS_CORETYPE set and report it.
    @Test func reexecutesWithAFixedCoreType() throws {
        let r = try CLIRunner.run(["doctor", "--json", "--seconds", "0.1", "--size", "128"],
                                  environment: ["OPENBLAS_CORETYPE": nil, "NOPEKIT_BLAS_REEXEC": nil,
                                                "NOPEKIT_TEST_ASSUME_GENERIC_CORE": "1"])
        #expect(r.status == 0, "\(r.stderr)")
        let cpuFlags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let expected = cpuFlags.contains("avx512bw") ? "SkylakeX" : cpuFlags.contains("avx2") ? "Haswell" : nil
        if let expected {
            #expect(r.stdout.contains("\"reexecuted\": true"))
            #expect(r.stdout.contains("\"openblas_coretype\": \"\(expected)\""))
            #expect(r.stdout.contains("\"blas_core\": \"\(expected)\""))
        } else {
            #expect(r.stdout.contains("\"reexecuted\": false"))
        }
        let skipped = try CLIRunner.run(["doctor", "--seconds", "0.1", "--size", "128", "--no-blas-check"],
                                        environment: ["OPENBLAS_CORETYPE": "Prescott", "NOPEKIT_BLAS_REEXEC": nil])
        #expect(skipped.status == 0)
        if expected != nil { #expect(skipped.stderr.contains("warning: OpenBLAS is using its generic Prescott kernels")) }
    }
}

/// Ctrl-C during a conversion: the process stops, exits 130 and leaves nothing behind.
@Suite struct InterruptTests {
    @Test func interruptedConvertLeavesNothingBehind() throws {
        let dir = try CLIRunner.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A 512 MiB F32 source: header + zero data (sparse, cheap to create).
        let source = dir + "/big.safetensors"
        let count = 128 << 20
        var header = Array(#"{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[\#(count)],"data_offsets":[0,\#(count * 4)]}}"#.utf8)
        header += [UInt8](repeating: 0x20, count: (8 - header.count % 8) % 8)
        let handle = try FileHandle(forWritingTo: { FileManager.default.createFile(atPath: source, contents: nil); return URL(fileURLWithPath: source) }())
        try handle.write(contentsOf: withUnsafeBytes(of: UInt64(header.count).littleEndian, Array.init) + header)
        try handle.truncate(atOffset: UInt64(8 + header.count + count * 4))
        try handle.close()

        let process = Process()
        process.executableURL = CLIRunner.binary
        process.arguments = ["convert", source, dir + "/out", "--dtype", "bf16"]
        process.standardError = Pipe()
        try process.run()
        // Interrupted the moment its temporary output appears, so the signal always lands
        // mid-write (a fixed sleep could let a fast machine finish first: issue 13).
        let deadline = Date().addingTimeInterval(60)
        var sawPartial = false
        while process.isRunning && Date() < deadline {
            if (try FileManager.default.contentsOfDirectory(atPath: dir)).contains(where: { $0.contains("nopekit-partial") }) {
                sawPartial = true
                break
            }
            usleep(500)
        }
        process.interrupt()
        process.waitUntilExit()
        #expect(sawPartial, "the convert finished before its output appeared: nothing was interrupted")
        #expect(process.terminationStatus == 130, "exit \(process.terminationStatus)")
        let contents = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(contents == ["big.safetensors"], "partial output left behind: \(contents)")
    }

    /// Ctrl-C while `extend` verifies, with its output folder half built (data, table, baked
    /// model): it stops at the next measurement, exits 130 and leaves nothing behind.
    @Test func interruptedExtendLeavesNothingBehind() throws {
        let dir = try CLIRunner.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let process = Process()
        process.executableURL = CLIRunner.binary
        process.currentDirectoryURL = CLIRunner.root
        process.arguments = ["extend", "--out", dir + "/out", "--target-length", "512", "--lengths", "256,512",
                             "--passkey-trials", "1", "--threads", "1"]
        /// stderr as it arrives (the handler runs on another thread).
        final class Collected: @unchecked Sendable {
            private let lock = NSLock()
            private var storage = ""
            func append(_ s: String) { lock.withLock { storage += s } }
            var text: String { lock.withLock { storage } }
        }
        let pipe = Pipe()
        process.standardError = pipe
        let collected = Collected()
        pipe.fileHandleForReading.readabilityHandler = { handle in collected.append(String(decoding: handle.availableData, as: UTF8.self)) }
        try process.run()
        // Interrupted once the verification has begun, so the output folder holds a search's
        // table and a baked model that must not survive.
        let deadline = Date().addingTimeInterval(300)
        var verifying = false
        while process.isRunning && Date() < deadline && !verifying {
            usleep(2_000)
            verifying = collected.text.contains("baseline: perplexity")
        }
        let partial = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains("nopekit-partial") }
        process.interrupt()
        process.waitUntilExit()
        pipe.fileHandleForReading.readabilityHandler = nil
        #expect(verifying, "extend ended before it verified: \(collected.text.suffix(400))")
        #expect(partial.count == 1, "no half-built output to protect: \(partial)")
        #expect(process.terminationReason == .exit && process.terminationStatus == 130, "exit \(process.terminationStatus)")
        #expect(collected.text.contains("interrupted"), "\(collected.text.suffix(400))")
        let contents = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(contents.isEmpty, "partial output left behind: \(contents)")
    }
}

/// GGUF through the command line.
@Suite struct GGUFCLITests {
    @Test func inspectGGUFMatchesGolden() throws {
        let text = try CLIRunner.run(["inspect", "fixtures/gguf/values.gguf", "--tensors"])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout == (try CLIRunner.golden("inspect.values-gguf.txt", actual: text.stdout)))
        let json = try CLIRunner.run(["inspect", "fixtures/gguf/values.gguf", "--json"])
        #expect(json.status == 0)
        #expect(json.stdout == (try CLIRunner.golden("inspect.values-gguf.json", actual: json.stdout)))
    }

    @Test func inspectRefusesBrokenGGUF() throws {
        let r = try CLIRunner.run(["inspect", "fixtures/gguf/malformed/duplicate_key.gguf"])
        #expect(r.status == 1 && r.stderr.contains("duplicate_key.gguf") && r.stderr.contains("appears twice"))
    }

    @Test func rewritesSplitsAndMergesGGUF() throws {
        let dir = try CLIRunner.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let split = try CLIRunner.run(["convert", "fixtures/gguf/quants.gguf", dir + "/q.gguf", "--max-shard-size", "100K"])
        #expect(split.status == 0, "\(split.stderr)")
        let written = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        let parts = written.filter { $0.hasSuffix(".gguf") }
        #expect(written == parts + ["q.gguf.sha256"])
        #expect(parts.count > 2 && parts[0].hasSuffix("-00001-of-0000\(parts.count).gguf"))
        // The message names the parts written, not the requested name (issue 13).
        #expect(split.stderr.contains("wrote \(parts.count) parts, \(dir)/\(parts[0]) … \(parts.last!)"), "\(split.stderr)")
        let merged = try CLIRunner.run(["convert", dir + "/" + parts[0], dir + "/merged.gguf"])
        #expect(merged.status == 0, "\(merged.stderr)")
        // Metadata, tensor infos and data are identical to the source: the bytes are.
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/merged.gguf")) == Data(contentsOf: CLIRunner.root.appendingPathComponent("fixtures/gguf/quants.gguf")))
        let dry = try CLIRunner.run(["convert", "fixtures/gguf/quants.gguf", dir + "/dry.gguf", "--dry-run"])
        #expect(dry.status == 0 && dry.stdout.contains("copied unchanged") && !FileManager.default.fileExists(atPath: dir + "/dry.gguf"))
        let notAModel = try CLIRunner.run(["convert", "fixtures/gguf/quants.gguf", dir + "/x.safetensors"])
        #expect(notAModel.status == 1 && notAModel.stderr.contains("missing required field"))
    }

    /// HF folder → GGUF → HF folder through the command line; a pattern llama.cpp cannot run is
    /// refused by name and leaves nothing behind.
    @Test func convertsBetweenHuggingFaceAndGGUF() throws {
        let dir = try CLIRunner.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let gguf = try CLIRunner.run(["convert", "fixtures/organism", dir + "/o.gguf", "--type", "q8_0"])
        #expect(gguf.status == 0 && gguf.stderr.contains("wrote") && gguf.stderr.contains("granite"), "\(gguf.stderr)")
        let back = try CLIRunner.run(["convert", dir + "/o.gguf", dir + "/back"])
        #expect(back.status == 0, "\(back.stderr)")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir + "/back").sorted()
        #expect(files == ["SHA256SUMS", "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])
        let inspect = try CLIRunner.run(["inspect", dir + "/back", "--json"])
        #expect(inspect.status == 0 && inspect.stdout.contains("\"model_type\": \"smollm3\""), "\(inspect.stdout)")
        let refused = try CLIRunner.run(["convert", "fixtures/engine/llama_mha_rope", dir + "/r.gguf", "--position", "layers:0"])
        #expect(refused.status == 1 && refused.stderr.contains("\"layers:0\"") && refused.stderr.contains("granite"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["back", "o.gguf", "o.gguf.sha256"])
        // A PyTorch .bin folder converts to safetensors (the restricted unpickler reads it).
        let fromBin = try CLIRunner.run(["convert", "fixtures/pytorch/hf_model", dir + "/from-bin"])
        #expect(fromBin.status == 0, "\(fromBin.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/from-bin").sorted() == ["SHA256SUMS", "config.json", "model.safetensors"])
        try FileManager.default.removeItem(atPath: dir + "/from-bin")
        let misplaced = try CLIRunner.run(["convert", "fixtures/organism", dir + "/x", "--type", "q8_0"])
        #expect(misplaced.status == 64 && misplaced.stderr.contains("--dtype"))
    }
}

/// Tokenize, score and bench through the command line.
@Suite struct EngineCLITests {
    @Test func tokenizeJSONMatchesGolden() throws {
        let r = try CLIRunner.run(["tokenize", "fixtures/tokenizers/bytelevel_llama3", "Hello, wörld! 123 <|eot_id|>", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == (try CLIRunner.golden("tokenize.llama3.json", actual: r.stdout)))
        let gguf = try CLIRunner.run(["tokenize", "fixtures/tokenizers/gguf_spm.gguf", "Hello world", "--no-special-tokens", "--json"])
        #expect(gguf.status == 0 && gguf.stdout.hasPrefix("{\"ids\":[") && !gguf.stdout.contains("\"<s>\""))
        let refused = try CLIRunner.run(["tokenize", "fixtures/tokenizers/unigram", "x"])
        #expect(refused.status == 1 && refused.stderr.contains("Unigram"))
    }

    /// A model folder with a character-level tokenizer whose ids fit the fixture's vocabulary.
    static func modelWithTokenizer() throws -> String {
        let dir = try CLIRunner.temporaryFolder()
        let source = CLIRunner.root.appendingPathComponent("fixtures/engine/llama_mha_rope").path
        for f in ["config.json", "model.safetensors"] { try FileManager.default.copyItem(atPath: source + "/" + f, toPath: dir + "/" + f) }
        let chars = Array("abcdefghijklmnopqrstuvwxyz .,")
        let vocab = ["\"<unk>\": 0", "\"<s>\": 1", "\"</s>\": 2"] + chars.enumerated().map { "\"\($1)\": \($0 + 3)" }
        let json = """
        {"version": "1.0", "added_tokens": [{"id": 0, "content": "<unk>", "special": true}, {"id": 1, "content": "<s>", "special": true}],
         "normalizer": null, "pre_tokenizer": null, "decoder": null,
         "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
         "model": {"type": "BPE", "unk_token": "<unk>", "vocab": {\(vocab.joined(separator: ", "))}, "merges": []}}
        """
        try json.write(toFile: dir + "/tokenizer.json", atomically: true, encoding: .utf8)
        return dir
    }

    @Test func scoresTextTokensAndTemperatures() throws {
        let dir = try Self.modelWithTokenizer()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "the cat sat on the mat, and the dog sat too.".write(toFile: dir + "/text.txt", atomically: true, encoding: .utf8)
        let text = try CLIRunner.run(["score", dir, "--text", dir + "/text.txt", "--json", "--entropy"])
        #expect(text.status == 0, "\(text.stderr)")
        let ids = try CLIRunner.run(["tokenize", dir, "the cat sat on the mat, and the dog sat too.", "--json"])
        let idList = String(ids.stdout.split(separator: "]")[0].dropFirst(8))
        try "[\(idList)]".write(toFile: dir + "/ids.json", atomically: true, encoding: .utf8)
        let tokens = try CLIRunner.run(["score", dir, "--tokens", dir + "/ids.json", "--json"])
        #expect(tokens.status == 0, "\(tokens.stderr)")
        func field(_ s: String, _ key: String) -> String? {
            s.split(separator: "\n").first { $0.contains("\"\(key)\"") }?.split(separator: ":").last?.trimmingCharacters(in: CharacterSet(charactersIn: " ,"))
        }
        #expect(field(text.stdout, "mean_loss") != nil && field(text.stdout, "mean_loss") == field(tokens.stdout, "mean_loss"))
        #expect(text.stdout.contains("\"entropy_bits\""))
        // Raw little-endian uint32 gives the same ids.
        let values = idList.split(separator: ",").compactMap { UInt32($0.trimmingCharacters(in: .whitespaces)) }
        var raw = Data()
        for v in values { withUnsafeBytes(of: v.littleEndian) { raw.append(contentsOf: $0) } }
        try raw.write(to: URL(fileURLWithPath: dir + "/ids.bin"))
        let binary = try CLIRunner.run(["score", dir, "--tokens", dir + "/ids.bin", "--json"])
        #expect(field(binary.stdout, "mean_loss") == field(tokens.stdout, "mean_loss"))
        // A temperature table changes the loss; a table for another shape is refused.
        let table = #"{"format": "nopekit.temperatures/1", "method": "uniform", "model": {"architecture": "llama", "layers": 2, "heads": 4, "head_dim": 16}, "scales": [[2, 2, 2, 2], null]}"#
        try table.write(toFile: dir + "/t.temps.json", atomically: true, encoding: .utf8)
        let scaled = try CLIRunner.run(["score", dir, "--tokens", dir + "/ids.json", "--temps", dir + "/t.temps.json", "--json"])
        #expect(scaled.status == 0 && field(scaled.stdout, "mean_loss") != field(tokens.stdout, "mean_loss"))
        try table.replacingOccurrences(of: "\"layers\": 2", with: "\"layers\": 3").replacingOccurrences(of: "null]", with: "null, null]")
            .write(toFile: dir + "/bad.temps.json", atomically: true, encoding: .utf8)
        let bad = try CLIRunner.run(["score", dir, "--tokens", dir + "/ids.json", "--temps", dir + "/bad.temps.json"])
        #expect(bad.status == 1 && bad.stderr.contains("does not fit this model"))
        let both = try CLIRunner.run(["score", dir, "--tokens", "a", "--text", "b"])
        #expect(both.status == 64)
    }
}

/// What this host's CPU offers, for tests that only make sense on some CPUs (`.enabled(if:)`,
/// never an early return that would pass without checking anything).
enum HostCPU {
    static let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    static var hasAVX512: Bool { flags.contains("avx512bw") && flags.contains("avx512dq") }
}
