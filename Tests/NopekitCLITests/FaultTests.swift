import Foundation
import Testing

/// SIGKILL at arbitrary points (issue 13): a killed writer leaves no output, only hidden
/// temporaries that the next write to the same output removes; a killed search resumes to the
/// same table as an uninterrupted one. Each test proves the kill happened (status 9).
@Suite(.serialized) struct FaultTests {
    /// One F32 tensor of `megabytes` MB of zeros (sparse, so writing it costs nothing).
    static func bigSafetensors(_ path: String, megabytes: Int) throws {
        let rows = megabytes * 256
        var header = Array("{\"w\":{\"dtype\":\"F32\",\"shape\":[\(rows),1024],\"data_offsets\":[0,\(rows * 4096)]}}".utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        let prefix = withUnsafeBytes(of: UInt64(header.count).littleEndian, Array.init) + header
        FileManager.default.createFile(atPath: path, contents: Data(prefix))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: UInt64(prefix.count + rows * 4096))
        try handle.close()
    }

    /// Runs `arguments` with SIGKILL after 0.15, 0.3, 0.6, 1.2 s (until killed twice); a killed
    /// run must not have published `output`, a finished one is removed for the next try.
    /// Returns how many runs were killed.
    static func killAtIncreasingDelays(_ arguments: [String], output: String, environment: [String: String?] = [:]) throws -> Int {
        var kills = 0
        for delay in [0.15, 0.3, 0.6, 1.2] where kills < 2 {
            let r = try CLIRunner.run(arguments, environment: environment, timeout: delay)
            if r.status == 9 {
                kills += 1
                #expect(!FileManager.default.fileExists(atPath: output), "a killed \(arguments[0]) published its output")
            } else {
                #expect(r.status == 0, "\(r.stderr)")
                try FileManager.default.removeItem(atPath: output)
            }
        }
        return kills
    }

    @Test func killedConvertLeavesNoOutputAndTheNextRunCleansUp() throws {
        let dir = try CLIRunner.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.bigSafetensors(dir + "/big.safetensors", megabytes: 400)
        let out = dir + "/out.safetensors"
        let kills = try Self.killAtIncreasingDelays(["convert", dir + "/big.safetensors", out, "--dtype", "bf16"], output: out)
        #expect(kills > 0, "convert was never killed: the input is too small for this machine")
        let done = try CLIRunner.run(["convert", dir + "/big.safetensors", out, "--dtype", "bf16"])
        #expect(done.status == 0, "\(done.stderr)")
        let left = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains("nopekit-partial") }
        #expect(left.isEmpty, "temporaries of killed runs remain: \(left)")
        let inspect = try CLIRunner.run(["inspect", out])
        #expect(inspect.status == 0 && inspect.stdout.contains("BF16"), "\(inspect.stdout)")
    }

    /// A sparse one-layer Llama folder (hidden 2048, 16 heads of 128, vocabulary 32000, F32:
    /// about 730 MB of zeros that cost nothing on disk) and a table scaling its only layer.
    static func bigLlamaFolder(_ folder: String) throws -> String {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let (D, F, V, H, E) = (2048, 5632, 32000, 16, 128)
        let shapes: [(String, [Int])] = [
            ("model.embed_tokens.weight", [V, D]), ("model.layers.0.input_layernorm.weight", [D]),
            ("model.layers.0.self_attn.q_proj.weight", [H * E, D]), ("model.layers.0.self_attn.k_proj.weight", [H * E, D]),
            ("model.layers.0.self_attn.v_proj.weight", [H * E, D]), ("model.layers.0.self_attn.o_proj.weight", [D, H * E]),
            ("model.layers.0.post_attention_layernorm.weight", [D]), ("model.layers.0.mlp.gate_proj.weight", [F, D]),
            ("model.layers.0.mlp.up_proj.weight", [F, D]), ("model.layers.0.mlp.down_proj.weight", [D, F]),
            ("model.norm.weight", [D]), ("lm_head.weight", [V, D]),
        ]
        var offset = 0
        var entries: [String] = []
        for (name, shape) in shapes {
            let bytes = shape.reduce(4, *)
            entries.append("\"\(name)\":{\"dtype\":\"F32\",\"shape\":\(shape),\"data_offsets\":[\(offset),\(offset + bytes)]}")
            offset += bytes
        }
        var header = Array("{\(entries.joined(separator: ","))}".utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        let path = folder + "/model.safetensors"
        FileManager.default.createFile(atPath: path, contents: Data(withUnsafeBytes(of: UInt64(header.count).littleEndian, Array.init) + header))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: UInt64(8 + header.count + offset))
        try handle.close()
        let config = #"{"model_type": "llama", "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 1, "num_attention_heads": 16, "num_key_value_heads": 16, "vocab_size": 32000, "nopekit_position": "none"}"#
        try Data(config.utf8).write(to: URL(fileURLWithPath: folder + "/config.json"))
        let table = folder + ".temps.json"
        let scales = (0..<16).map { _ in "1.5" }.joined(separator: ", ")
        let json = #"{"format": "nopekit.temperatures/1", "method": "test", "model": {"architecture": "llama", "layers": 1, "heads": 16, "head_dim": 128}, "scales": [[\#(scales)]], "search": {}}"#
        try Data(json.utf8).write(to: URL(fileURLWithPath: table))
        return table
    }

    /// A bake killed at arbitrary points publishes nothing; the next bake to the same folder
    /// succeeds and removes the killed runs' temporaries.
    @Test func killedBakeLeavesNoOutputAndTheNextRunCleansUp() throws {
        let dir = try CLIRunner.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let table = try Self.bigLlamaFolder(dir + "/big")
        let out = dir + "/baked"
        let args = ["bake", dir + "/big", "--temps", table, "--out", out]
        let kills = try Self.killAtIncreasingDelays(args, output: out, environment: ["NOPEKIT_CACHE_DIR": "off"])
        #expect(kills > 0, "bake was never killed: the input is too small for this machine")
        let done = try CLIRunner.run(args)
        #expect(done.status == 0, "\(done.stderr)")
        let left = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains("nopekit-partial") }
        #expect(left.isEmpty, "temporaries of killed runs remain: \(left)")
        let inspect = try CLIRunner.run(["inspect", out])
        #expect(inspect.status == 0, "\(inspect.stdout)")
    }

    /// Killed as soon as its step-10 state is saved, a search resumed with --resume ends with
    /// the same table, bit for bit, as a run that was never interrupted.
    @Test func killedSearchResumesToTheSameTable() throws {
        let dir = try CLIRunner.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let args = ["search", "fixtures/organism", "--data", "fixtures/verify/eval.txt", "--target-length", "1024",
                    "--schedule", "fast", "--steps", "20", "--threads", "1"]
        let whole = try CLIRunner.run(args + ["--out", dir + "/whole.temps.json"])
        #expect(whole.status == 0, "\(whole.stderr)")
        // Started by hand, killed the moment the state file appears (it is published whole).
        let out = dir + "/resumed.temps.json"
        let process = Process()
        process.executableURL = CLIRunner.binary
        process.arguments = args + ["--out", out]
        process.currentDirectoryURL = CLIRunner.root
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: out + ".state.json") && process.isRunning && Date() < deadline {
            usleep(2_000)
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL, "the search was not killed")
        #expect(!FileManager.default.fileExists(atPath: out))
        let resumed = try CLIRunner.run(args + ["--out", out, "--resume"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stderr.contains("resuming from"), "no state had been saved before the kill: \(resumed.stderr.prefix(300))")
        func scales(_ name: String) throws -> NSArray {
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/" + name))) as! [String: Any]
            return json["scales"] as! NSArray
        }
        #expect(try scales("whole.temps.json") == scales("resumed.temps.json"))
    }

    /// Killed right after each of its outputs in turn while it saves (the test hook
    /// NOPEKIT_TEST_KILL_AFTER_COMMITS), a pretrain resumed with --resume ends with the same
    /// weights, optimiser moments, step and RNG, bit for bit, as a run that was never
    /// interrupted, and leaves no temporaries. (When the checkpoint was a set of files, a kill
    /// after the new weights but before the new step resumed the new weights from the old step.)
    @Test func killedPretrainResumesToTheSameWeights() throws {
        let dir = try CLIRunner.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let args = ["pretrain", "--preset", "micro", "--length", "64", "--batch", "2", "--steps", "6", "--eval-every", "2", "--threads", "1"]
        let whole = try CLIRunner.run(args + ["--out", dir + "/whole"])
        #expect(whole.status == 0, "\(whole.stderr)")
        let compared = ["model.safetensors", "checkpoint/parameters/model.safetensors", "checkpoint/m/model.safetensors",
                        "checkpoint/v/model.safetensors", "checkpoint/state.json", "SHA256SUMS", "checkpoint/parameters/SHA256SUMS"]
        // One save commits 34 outputs: three model folders of 7 (the weights twice, as a file
        // written inside a replaced file, 4 small files and the checksum record), state, log,
        // the checkpoint's record and the checkpoint folder; then the model's 7, log and card.
        // The first save is commits 1–34, so 35–68 are the points of the second.
        var kills = 0
        for k in stride(from: 35, through: 68, by: 2) {
            let out = dir + "/killed-\(k)"
            let killed = try CLIRunner.run(args + ["--out", out], environment: ["NOPEKIT_TEST_KILL_AFTER_COMMITS": String(k)])
            guard killed.status == 9 else { Issue.record("not killed after commit \(k): \(killed.status) \(killed.stderr.suffix(300))"); continue }
            kills += 1
            let resumed = try CLIRunner.run(args + ["--out", out, "--resume"])
            #expect(resumed.status == 0, "after commit \(k): \(resumed.stderr.suffix(300))")
            for file in compared {
                let a = FileManager.default.contents(atPath: dir + "/whole/" + file), b = FileManager.default.contents(atPath: out + "/" + file)
                #expect(a != nil && a == b, "killed after commit \(k), resumed: \(file) differs from the uninterrupted run's")
            }
            let left = (FileManager.default.enumerator(atPath: out)?.allObjects as? [String] ?? []).filter { $0.contains("nopekit-partial") }
            #expect(left.isEmpty, "after commit \(k): temporaries remain: \(left)")
        }
        #expect(kills == 17)
    }

    /// A full disk or a file-size limit (here `ulimit -f`, which nopekit turns from a fatal
    /// SIGXFSZ into a failed write) gives an error naming the output, exit 1, and nothing
    /// left behind (issue 13).
    @Test(arguments: [["convert", "fixtures/organism", "OUT", "--dtype", "bf16"], ["convert", "fixtures/organism", "OUT.gguf", "--type", "q8_0"]])
    func fileSizeLimitFailsCleanly(_ template: [String]) throws {
        let dir = try CLIRunner.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let arguments = template.map { $0.replacingOccurrences(of: "OUT", with: dir + "/out") }
        let r = try CLIRunner.run(["-c", "ulimit -f 512; exec \"$0\" \"$@\"", CLIRunner.binary.path] + arguments,
                                  timeout: 60, executable: URL(fileURLWithPath: "/bin/sh"))
        #expect(r.status == 1, "\(r.status) \(r.stderr)")
        #expect(r.stderr.contains("\(dir)/out") && r.stderr.contains("file size limit") && !r.stderr.contains("nopekit-partial"), "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
    }
}

/// Inputs are never written (issue 13): every command that reads a model runs on a copy whose
/// files are read-only, and afterwards each file has its bytes, its mtime and its ctime. The
/// ctime moves on any write, truncation, chmod or rename of the inode, so the check holds even
/// when the tests run as root (for whom the read-only mode is no obstacle).
@Suite struct ReadOnlyInputTests {
    struct Stamp: Equatable { var bytes: Data; var mtime: timespec; var ctime: timespec
        static func == (a: Stamp, b: Stamp) -> Bool {
            a.bytes == b.bytes && a.mtime.tv_sec == b.mtime.tv_sec && a.mtime.tv_nsec == b.mtime.tv_nsec
                && a.ctime.tv_sec == b.ctime.tv_sec && a.ctime.tv_nsec == b.ctime.tv_nsec
        }
    }

    static func stamps(_ folder: String) throws -> [String: Stamp] {
        var out: [String: Stamp] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: folder) {
            var st = stat()
            guard stat(folder + "/" + name, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            out[name] = Stamp(bytes: try Data(contentsOf: URL(fileURLWithPath: folder + "/" + name)), mtime: st.st_mtim, ctime: st.st_ctim)
        }
        return out
    }

    @Test func everyCommandLeavesItsInputsUntouched() throws {
        let dir = try CLIRunner.temporaryFolder()
        defer {
            _ = try? CLIRunner.run(["-R", "u+w", dir], executable: URL(fileURLWithPath: "/bin/chmod"))
            try? FileManager.default.removeItem(atPath: dir)
        }
        let model = dir + "/organism", text = dir + "/eval.txt"
        try FileManager.default.copyItem(atPath: "fixtures/organism", toPath: model)
        try FileManager.default.copyItem(atPath: "fixtures/verify/eval.txt", toPath: text)
        for file in try FileManager.default.contentsOfDirectory(atPath: model) {
            try FileManager.default.setAttributes([.posixPermissions: 0o444], ofItemAtPath: model + "/" + file)
        }
        try FileManager.default.setAttributes([.posixPermissions: 0o444], ofItemAtPath: text)
        try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: model)
        let before = try Self.stamps(model), textBefore = try Self.stamps(dir)["eval.txt"]
        #expect(before["model.safetensors"] != nil && before["config.json"] != nil)
        usleep(20_000)  // a write in the same clock tick as the copy would not move a coarse mtime

        let table = dir + "/t.temps.json"
        let commands: [[String]] = [
            ["inspect", model, "--tensors"],
            ["tokenize", model, "The pass key is 12345."],
            ["score", model, "--text", text],
            ["search", model, "--data", text, "--target-length", "512", "--schedule", "fast", "--steps", "2", "--threads", "1", "--out", table],
            ["bake", model, "--temps", table, "--out", dir + "/baked"],
            ["bake", model, "--temps", table, "--out", dir + "/baked.gguf", "--format", "gguf"],
            ["convert", model, dir + "/model.gguf"],
            ["verify", dir + "/baked", "--baseline", model, "--temps", table, "--data", text, "--lengths", "256", "--passkey-trials", "1"],
        ]
        for arguments in commands {
            let r = try CLIRunner.run(arguments)
            #expect(r.status == 0, "\(arguments[0]): \(r.stderr.suffix(300))")
        }
        let after = try Self.stamps(model)
        for (name, stamp) in before { #expect(after[name] == stamp, "\(name) was written to, or its inode changed") }
        #expect(after.count == before.count, "files appeared in the input folder: \(after.keys.sorted())")
        #expect(try Self.stamps(dir)["eval.txt"] == textBefore)
    }
}
