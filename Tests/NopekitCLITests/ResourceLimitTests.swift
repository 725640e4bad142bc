import Foundation
import Testing

/// A tiny file that claims huge sizes is refused before anything is allocated from the claim:
/// exit 1, well under a second, peak RSS under 50 MB (issue 13). Peak RSS is GNU time's `%M`
/// of the child alone (`make deps` installs it).
@Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/time"), "needs GNU time (make deps installs it)"))
struct ResourceLimitTests {
    static func gguf(tensors: UInt64, kvCount: UInt64? = nil, _ kvs: [(String, UInt32, [UInt8])] = []) -> [UInt8] {
        func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
        var b = Array("GGUF".utf8) + le(UInt32(3)) + le(tensors) + le(kvCount ?? UInt64(kvs.count))
        for (k, t, v) in kvs { b += le(UInt64(k.utf8.count)) + Array(k.utf8) + le(t) + v }
        return b
    }

    static func safetensors(header: [UInt8], claimedLength: UInt64? = nil) -> [UInt8] {
        withUnsafeBytes(of: (claimedLength ?? UInt64(header.count)).littleEndian, Array.init) + header
    }

    static func le64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }

    static let cases: [(String, [UInt8])] = [
        ("tensors.gguf", gguf(tensors: 1 << 62)),                                                   // 2^62 tensors
        ("kvs.gguf", gguf(tensors: 0, kvCount: 1 << 62)),                                           // 2^62 metadata entries
        ("array.gguf", gguf(tensors: 0, [("a", 9, [0, 0, 0, 0] + le64(1_000_000_000_000))])),      // a 10^12-element array
        ("string.gguf", gguf(tensors: 0, [("a", 8, le64(1 << 60))])),                               // a 2^60-byte string
        ("tera.safetensors", safetensors(header: Array(#"{"w":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,4]}}    "#.utf8) + [0, 0, 0, 0])),
        ("header.safetensors", safetensors(header: Array("{}".utf8), claimedLength: 1 << 60)),     // a 2^60-byte header
        ("deep.safetensors", safetensors(header: [UInt8](repeating: UInt8(ascii: "["), count: 200_000))),  // nesting
    ]

    /// `nopekit ARGS` run under GNU time: its result and its peak RSS in KB.
    static func measured(_ arguments: [String], in dir: String) throws -> (result: CLIRunner.Result, peakKB: Int) {
        let r = try CLIRunner.run(["-f", "%M", "-o", dir + "/rss.txt", CLIRunner.binary.path] + arguments,
                                  timeout: 30, executable: URL(fileURLWithPath: "/usr/bin/time"))
        return (r, Int(try String(contentsOfFile: dir + "/rss.txt", encoding: .utf8).split(separator: "\n").last ?? "") ?? .max)
    }

    @Test(arguments: cases.map(\.0))
    func hugeClaimsAreRefusedCheaply(_ name: String) throws {
        let dir = try CLIRunner.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bytes = Self.cases.first { $0.0 == name }!.1
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/" + name))
        // Under AddressSanitizer (`make test-asan`) every process starts some 50 MB larger
        // (shadow memory, quarantine): the bound is then 50 MB over `nopekit --version`.
        let sanitizerKB = ProcessInfo.processInfo.environment["NOPEKIT_SANITIZER"] == "address"
            ? try Self.measured(["--version"], in: dir).peakKB : 0
        let started = Date()
        let (r, peakKB) = try Self.measured(["inspect", dir + "/" + name], in: dir)
        let seconds = Date().timeIntervalSince(started)
        #expect(r.status == 1 && r.stderr.contains(name), "\(name): \(r.status) \(r.stderr.prefix(300))")
        #expect(peakKB < sanitizerKB + 50 * 1024, "\(name): peak RSS \(peakKB) KB")
        #expect(seconds < 5, "\(name): \(seconds) s")   // well under a second alone; slack for a busy test machine
    }

    /// A real (not claimed) array of 25 million bytes costs about its size, not 41 bytes per
    /// element as enum values did (1 GB to inspect a 25 MB file): the bytes stay packed.
    @Test func aLargeMetadataArrayCostsAboutItsSize() throws {
        let dir = try CLIRunner.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let count = 25_000_000
        var bytes = Self.gguf(tensors: 0, [("big", 9, [0, 0, 0, 0] + Self.le64(UInt64(count)))])   // ARRAY of UINT8
        bytes += (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 131) }
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/big.gguf"))
        let baselineKB = try Self.measured(["--version"], in: dir).peakKB
        let (r, peakKB) = try Self.measured(["inspect", dir + "/big.gguf"], in: dir)
        #expect(r.status == 0 && r.stdout.contains("25000000 × UINT8"), "\(r.stdout.prefix(500)) \(r.stderr.prefix(300))")
        // The mapped file (25 MB) and one copy of the array (25 MB) over the process's own size;
        // under AddressSanitizer the copy also costs its shadow and redzones (62 MB measured).
        let slackMB = ProcessInfo.processInfo.environment["NOPEKIT_SANITIZER"] == "address" ? 75 : 60
        #expect(peakKB < baselineKB + slackMB * 1024, "peak RSS \(peakKB) KB, \(baselineKB) KB for --version")
    }
}
