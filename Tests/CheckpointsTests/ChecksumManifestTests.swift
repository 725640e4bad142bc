@testable import Checkpoints
import Foundation
import Testing

/// Every output records its own checksums (issue 13), checked against coreutils' `sha256sum`:
/// the records must be byte-identical to what it prints and pass `sha256sum -c --strict`, and a
/// damaged file must fail both it and nopekit's own check.
@Suite struct ChecksumManifestTests {
    /// Runs `command` in `folder` through the shell; returns the exit status and stdout.
    static func shell(_ command: String, in folder: String) throws -> (status: Int32, stdout: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        p.currentDirectoryURL = URL(fileURLWithPath: folder)
        p.environment = ["LC_ALL": "C", "PATH": "/usr/bin:/bin"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// What `sha256sum` prints for every file under `folder` but SHA256SUMS, sorted by path bytes.
    static func sha256sumListing(_ folder: String) throws -> String {
        try shell("find . -type f ! -path ./SHA256SUMS -printf '%P\\0' | sort -z | xargs -0 sha256sum --", in: folder).stdout
    }

    static func tensor(_ name: String, floats: [Float]) -> OutputTensor {
        OutputTensor.inMemory(name: name, dtype: .f32, shape: [floats.count], bytes: floats.withUnsafeBytes { Array($0) })
    }

    @Test func aFolderOutputRecordsEveryFileAsSha256sumPrintsThem() throws {
        let dir = try TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tensors = (0..<4).map { i in Self.tensor("t\(i)", floats: (0..<300).map { Float($0 * (i + 1)) }) }
        // Names sha256sum escapes (backslash, newline) are escaped the same way.
        try SafetensorsWriter.writeFolder(tensors, metadata: [:], to: dir + "/out", maxShardBytes: 1500, extraFiles: {
            [("config.json", Array("{}\n".utf8)), ("odd\\name.txt", [1, 2]), ("new\nline.txt", [3])]
        })
        let out = dir + "/out"
        let text = String(decoding: try readBytes(out + "/SHA256SUMS"), as: UTF8.self)
        #expect(text == (try Self.sha256sumListing(out)))
        #expect(text.split(separator: "\n").count == 4 + 3 + 1)  // 4 shards, 3 extra files, the index
        #expect(try Self.shell("sha256sum -c --strict --quiet SHA256SUMS", in: out).status == 0)
        #expect(try ChecksumManifest.parse(try readBytes(out + "/SHA256SUMS"), file: "SHA256SUMS").text == text)

        // One flipped byte: both sha256sum and nopekit's check name that file alone.
        let victim = out + "/model-00003-of-00004.safetensors"
        var bytes = try readBytes(victim)
        bytes[bytes.count - 1] ^= 0x01
        try writeBytes(bytes, to: victim)
        let coreutils = try Self.shell("sha256sum -c --strict SHA256SUMS", in: out)
        #expect(coreutils.status == 1 && coreutils.stdout.contains("model-00003-of-00004.safetensors: FAILED"))
        let checks = try ChecksumManifest.parse(try readBytes(out + "/SHA256SUMS"), file: "SHA256SUMS").check(in: out)
        #expect(checks.filter { $0.status != .ok }.map(\.entry.path) == ["model-00003-of-00004.safetensors"])
    }

    /// A header completed after the data (the bake's source checksum) is hashed as finally
    /// written, not as first written: the record must match the file.
    @Test func aHeaderRewrittenAfterTheDataIsHashedAsFinallyWritten() throws {
        let dir = try TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let big = Self.tensor("big", floats: (0..<3_000_000).map { Float($0) })  // 12 MB: several digest reads
        try SafetensorsWriter.write([big], metadata: ["late": "0000"], late: { ["late": "1234"] }, to: dir + "/m.safetensors")
        #expect(try SafetensorsFile(path: dir + "/m.safetensors").metadata.first { $0.key == "late" }?.value == "1234")
        #expect(String(decoding: try readBytes(dir + "/m.safetensors.sha256"), as: UTF8.self) == (try Self.shell("sha256sum m.safetensors", in: dir).stdout))

        let parts = (0..<3).map { i in Self.tensor("g\(i)", floats: (0..<1000).map { Float($0 + i) }) }
        try GGUFWriter.write(metadata: [GGUFKeyValue("late", .string("0000"))], tensors: parts, to: dir + "/s.gguf", maxShardBytes: 5000,
                             late: { [GGUFKeyValue("late", .string("5678"))] })
        let split = ["s-00001-of-00003.gguf", "s-00002-of-00003.gguf", "s-00003-of-00003.gguf"]
        #expect(try GGUFFile(path: dir + "/" + split[0]).metadata["late"] == .string("5678"))
        #expect(String(decoding: try readBytes(dir + "/s.gguf.sha256"), as: UTF8.self) == (try Self.shell("sha256sum " + split.joined(separator: " "), in: dir).stdout))
        #expect(ChecksumManifest.location(for: dir + "/" + split[1]) == dir + "/s.gguf.sha256")
    }

    /// A record left from an earlier file of the same name (since deleted) is replaced, never
    /// trusted; a folder output written into an empty folder records only its own files.
    @Test func aStaleRecordIsReplaced() throws {
        let dir = try TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeBytes(Array("\(String(repeating: "0", count: 64))  x.gguf\n".utf8), to: dir + "/x.gguf.sha256")
        try GGUFWriter.write(metadata: [], tensors: [Self.tensor("a", floats: [1, 2])], to: dir + "/x.gguf")
        #expect(try Self.shell("sha256sum -c --strict --quiet x.gguf.sha256", in: dir).status == 0)
    }

    @Test func readingIsStrictAndNamesTheLine() throws {
        let d = String(repeating: "ab", count: 32)
        let ok = try ChecksumManifest.parse(Array("\(d.uppercased()) *b\n\(d)  a/c\n".utf8), file: "M")
        #expect(ok.entries == [.init(path: "a/c", sha256: d), .init(path: "b", sha256: d)])
        let cases: [(String, Int, String)] = [
            ("\(d)  a\nnot a line\n", 2, "64 hex digits"),
            ("\(d) a\n", 1, "two spaces"),
            ("\(d)  ../etc/passwd\n", 1, "not a relative path"),
            ("\(d)  /etc/passwd\n", 1, "not a relative path"),
            ("\(d)  a//b\n", 1, "not a relative path"),
            ("\(d)  a\n\(d)  a\n", 2, "listed twice"),
            ("\\\(d)  a\\qb\n", 1, "bad escape"),
            ("\n", 1, "64 hex digits"),
        ]
        for (text, line, reason) in cases {
            #expect {
                _ = try ChecksumManifest.parse(Array(text.utf8), file: "M")
            } throws: { error in
                guard case .malformed(let path, let l, let r)? = error as? ManifestError else { return false }
                return path == "M" && l == line && r.contains(reason)
            }
        }
    }

    /// The value scan finds NaN and ±Inf by tensor name in every float encoding, quantised
    /// blocks included, and nothing in finite weights.
    @Test func theScanNamesEveryTensorWithNonFiniteValues() throws {
        let dir = try TestPaths.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func plain(_ name: String, _ dtype: DType, _ values: [Float]) throws -> OutputTensor {
            var bytes = [UInt8](repeating: 0, count: values.count * dtype.byteSize!)
            try values.withUnsafeBufferPointer { v in try bytes.withUnsafeMutableBytes { try ElementConversion.encode(v.baseAddress!, count: v.count, as: dtype, into: $0.baseAddress!) } }
            return .inMemory(name: name, dtype: dtype, shape: [values.count], bytes: bytes)
        }
        var q8 = [UInt8](repeating: 0, count: 34 * 2)  // two Q8_0 blocks: f16 scale + 32 int8
        q8[34] = 0x00; q8[35] = 0x7C                    // the second block's scale is +Inf
        q8[36] = 1                                       // its quants: one 1, the rest 0
        let tensors = [
            try plain("ok.f32", .f32, [1, 2, 3]),
            try plain("nan.f32", .f32, [0, .nan, 1, .nan]),
            try plain("inf.f16", .f16, [.infinity, 0]),
            try plain("inf.bf16", .bf16, [1, 2, -.infinity]),
            OutputTensor(name: "inf.q8_0", type: .quantized(.q8_0), shape: [64], byteCount: q8.count) { sink in try q8.withUnsafeBytes { try sink($0) } },
        ]
        try GGUFWriter.write(metadata: [], tensors: tensors, to: dir + "/m.gguf")
        let found = try IntegrityCheck.scan(try GGUFFile(path: dir + "/m.gguf"))
        #expect(found.sorted { $0.tensor < $1.tensor } == [
            .init(tensor: "inf.bf16", count: 1, firstIndex: 2),
            .init(tensor: "inf.f16", count: 1, firstIndex: 0),
            .init(tensor: "inf.q8_0", count: 32, firstIndex: 32),  // Inf × q: Inf, or NaN for q = 0
            .init(tensor: "nan.f32", count: 2, firstIndex: 1),
        ])
        #expect(try IntegrityCheck.scan(try ShardedSafetensors(folder: TestPaths.root.appendingPathComponent("fixtures/organism").path)).isEmpty)
    }
}
