import Foundation

/// Runs the built `nopekit` binary, as a user would, and captures its output.
/// (The argument-parser examples test their tools the same way: `AssertExecuteCommand`.)
struct CLIRunner {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The binary `swift test` built beside the tests.
    static var binary: URL {
        let candidates = [Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("nopekit"),
                          Bundle.main.bundleURL.appendingPathComponent("nopekit"),
                          root.appendingPathComponent(".build/debug/nopekit")]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates.last!
    }

    /// A fresh empty folder under the system temporary folder; the caller removes it (`defer`).
    static func temporaryFolder() throws -> String {
        let dir = NSTemporaryDirectory() + "nopekit-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `nopekit arguments…` in the repository root. `environment` entries are added to a
    /// fixed environment (no colour, 80 columns) and `nil` values remove variables.
    /// With `timeout`, the process is killed (SIGKILL, status 9) if it runs longer: a test of
    /// "must not hang" then fails instead of hanging the suite.
    static func run(_ arguments: [String], environment: [String: String?] = [:], timeout: Double? = nil,
                    executable: URL? = nil) throws -> Result {
        let process = Process()
        process.executableURL = executable ?? binary
        process.arguments = arguments
        process.currentDirectoryURL = root
        var env = ProcessInfo.processInfo.environment
        env["NO_COLOR"] = "1"
        env["COLUMNS"] = "80"
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let pid = process.processIdentifier
        let killer = DispatchWorkItem { kill(pid, SIGKILL) }
        if let timeout { DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer) }
        defer { killer.cancel() }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                      stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// The golden file `Golden/name`, or a note to create it with `NOPEKIT_RECORD_GOLDEN=1`.
    static func golden(_ name: String, actual: String) throws -> String {
        let url = root.appendingPathComponent("Tests/NopekitCLITests/Golden/\(name)")
        if ProcessInfo.processInfo.environment["NOPEKIT_RECORD_GOLDEN"] != nil {
            try actual.write(to: url, atomically: true, encoding: .utf8)
        }
        return try String(contentsOf: url, encoding: .utf8)
    }
}
