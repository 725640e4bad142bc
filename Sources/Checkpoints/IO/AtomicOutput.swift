#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CFileCopy
import Foundation

/// Output that appears at its final path only when complete.
///
/// Everything is written under a hidden temporary name in the destination folder (so the final
/// `rename` is atomic on the same file system) and renamed into place by `commit()`. If writing
/// fails, is interrupted (Ctrl-C, SIGTERM) or the process throws, `discard()` removes the
/// partial output; nothing half-written is left behind and existing files are never replaced.
/// A folder output records its files' checksums (`ChecksumManifest`).
public final class AtomicOutput {
    public enum Kind { case file, directory }

    public let finalPath: String
    public let temporaryPath: String
    public let kind: Kind
    /// Whether an existing output of the same kind may be replaced (`init`'s `replacing`).
    private let replacing: Bool
    private var committed = false

    /// Reserves `finalPath`. Fails if it exists (a non-empty folder, or any file), unless
    /// `replacing` it: a state file or state folder that is rewritten as a whole (a folder is
    /// then swapped in by one atomic exchange, never removed first). Fails if its parent
    /// folder does not exist, and if the path is a symbolic link, even a dangling one: the
    /// rename would replace the link itself, silently.
    public init(finalPath: String, kind: Kind, replacing: Bool = false) throws {
        let fm = FileManager.default
        let url = URL(fileURLWithPath: finalPath).standardizedFileURL
        self.finalPath = url.path
        self.kind = kind
        self.replacing = replacing
        var link = stat()
        if lstat(url.path, &link) == 0, (link.st_mode & S_IFMT) == S_IFLNK {
            throw FileError.outputIsLink(path: url.path, target: (try? fm.destinationOfSymbolicLink(atPath: url.path)) ?? "?")
        }
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: url.path, isDirectory: &isDir) {
            let emptyDir = isDir.boolValue && kind == .directory
                && ((try? fm.contentsOfDirectory(atPath: url.path))?.isEmpty ?? false)
            let replaceable = replacing && (kind == .directory) == isDir.boolValue
            if !emptyDir && !replaceable { throw FileError.outputExists(path: url.path) }
        }
        let parent = url.deletingLastPathComponent().path
        guard fm.fileExists(atPath: parent, isDirectory: &isDir), isDir.boolValue else {
            throw FileError.cannotWrite(path: url.path, reason: "parent folder \(parent) does not exist")
        }
        Self.removeStalePartials(of: url.lastPathComponent, in: parent)
        temporaryPath = (parent as NSString).appendingPathComponent(".\(url.lastPathComponent).nopekit-partial-\(getpid())")
        // The handler goes in before anything exists on disk: a Ctrl-C that arrived between
        // creating the temporary and installing it killed the process and left the temporary.
        Interruption.install()
        if kind == .directory {
            do { try fm.createDirectory(atPath: temporaryPath, withIntermediateDirectories: false) } catch {
                throw FileError.cannotWrite(path: temporaryPath, reason: error.localizedDescription)
            }
        }
    }

    deinit { if !committed { discard() } }

    /// The path a user asked for, for a path inside a temporary output
    /// (`DIR/.NAME.nopekit-partial-PID/FILE` → `DIR/NAME/FILE`), so messages name the output.
    public static func publicPath(_ path: String) -> String {
        var parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        for (i, p) in parts.enumerated() where p.hasPrefix(".") {
            if let r = p.range(of: ".nopekit-partial-", options: .backwards) { parts[i] = String(p[p.index(after: p.startIndex)..<r.lowerBound]) }
        }
        return parts.joined(separator: "/")
    }

    /// Temporaries of the same output left by a process that no longer runs (killed with
    /// SIGKILL, or by a power cut, before it could clean up): removed, since nothing else
    /// would. A live writer's temporary is left alone.
    static func removeStalePartials(of name: String, in parent: String) {
        let prefix = ".\(name).nopekit-partial-"
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: parent) else { return }
        for entry in entries where entry.hasPrefix(prefix) {
            guard let pid = Int32(entry.dropFirst(prefix.count)), pid > 0, pid != getpid() else { continue }
            if kill(pid, 0) == -1 && errno == ESRCH {
                try? FileManager.default.removeItem(atPath: (parent as NSString).appendingPathComponent(entry))
            }
        }
    }

    /// Path of `name` inside a directory output, while it is being written.
    public func temporaryChild(_ name: String) -> String {
        (temporaryPath as NSString).appendingPathComponent(name)
    }

    /// Renames the finished output into place. A folder replacing a non-empty folder is
    /// exchanged with it (renameat2 RENAME_EXCHANGE) and the old one, now under the temporary
    /// name, removed: killed in between, the new folder is in place and the old one is a
    /// stale temporary that the next write removes.
    /// A folder gets its checksum record (`ChecksumManifest`, `SHA256SUMS`) first, so it is
    /// published with the files it lists.
    public func commit() throws {
        try Interruption.check(finalPath)
        if kind == .directory { try ChecksumManifest.writeForFolder(temporaryPath) }
        var exchanged = false
        var isDir: ObjCBool = false
        // Only an output allowed to replace one: a folder that appeared meanwhile at a path
        // reserved without `replacing` makes the rename below fail, it is never swapped out.
        if kind == .directory, replacing, FileManager.default.fileExists(atPath: finalPath, isDirectory: &isDir), isDir.boolValue,
           !((try? FileManager.default.contentsOfDirectory(atPath: finalPath))?.isEmpty ?? true) {
            guard nopekit_exchange(temporaryPath, finalPath) == 0 else {
                let reason = String(cString: strerror(errno))
                discard()
                throw FileError.cannotWrite(path: finalPath, reason: reason)
            }
            exchanged = true
        } else {
            // rename(2) replaces an empty destination folder or a file (accepted in init).
            guard rename(temporaryPath, finalPath) == 0 else {
                let reason = String(cString: strerror(errno))
                discard()
                throw FileError.cannotWrite(path: finalPath, reason: reason)
            }
        }
        committed = true
        FaultInjection.committed()
        if exchanged { try? FileManager.default.removeItem(atPath: temporaryPath) }
    }

    /// Writes a whole small file atomically: temporary name, fdatasync, rename.
    public static func write(_ bytes: [UInt8], to path: String, replacing: Bool = false) throws {
        let output = try AtomicOutput(finalPath: path, kind: .file, replacing: replacing)
        let writer = try OutputFile(creating: output.temporaryPath)
        try writer.write(bytes)
        try writer.finish()
        try output.commit()
    }

    /// Removes the partial output (idempotent).
    public func discard() {
        try? FileManager.default.removeItem(atPath: temporaryPath)
    }
}

/// A test hook for the fault tests: with `NOPEKIT_TEST_KILL_AFTER_COMMITS=N` in the environment
/// the process sends itself SIGKILL right after its N-th output is committed, so a test can
/// stop a writer between any two of its outputs (a random kill hits the short gaps between
/// them too rarely to prove anything). Unset, it costs one lookup.
enum FaultInjection {
    nonisolated(unsafe) static var commits = 0
    static let killAfter: Int? = ProcessInfo.processInfo.environment["NOPEKIT_TEST_KILL_AFTER_COMMITS"].flatMap { Int($0) }

    static func committed() {
        guard let killAfter else { return }
        commits += 1
        if commits == killAfter { kill(getpid(), SIGKILL) }
    }
}

/// Ctrl-C and SIGTERM during a write: the first signal asks the writer to stop at the next
/// chunk boundary (it then removes its partial output and exits with an error); a second one
/// exits at once.
public enum Interruption {
    nonisolated(unsafe) static var signalCount: Int32 = 0
    nonisolated(unsafe) static var installed = false

    public static func install() {
        guard !installed else { return }
        installed = true
        let handler: @convention(c) (Int32) -> Void = { sig in
            Interruption.signalCount += 1
            if Interruption.signalCount > 1 { _exit(128 + sig) }
        }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
        // A parent may have started us with these signals blocked (the mask is inherited):
        // unblock them, or Ctrl-C would stay pending until the write had finished.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    public static var requested: Bool { signalCount > 0 }

    /// Throws `FileError.interrupted` once a signal has arrived.
    public static func check(_ path: String) throws {
        if requested { throw FileError.interrupted(path: path) }
    }
}

/// A file being written with buffered `write(2)`, mapping ENOSPC to `FileError.diskFull`.
public final class OutputFile {
    public let path: String
    private let fd: Int32
    private var buffer: [UInt8] = []
    private let bufferCapacity = 1 << 20
    public private(set) var bytesWritten = 0
    /// Bytes already handed to writeback (`startWriteback`).
    private var writebackStarted = 0
    private static let writebackStep = 64 << 20

    /// The file's SHA-256, hashed behind the writer; known after `finish`.
    public private(set) var sha256: String?
    private let digest: TrailingDigest
    /// Whether the first bytes are still to be rewritten (`overwrite`), so not yet hashed.
    private var headerPending: Bool

    /// Creates `path`, which must not exist. With `rewritesHeader`, the caller will
    /// `overwrite` the start of the file before `finish` (a header completed after the data):
    /// hashing then starts once it has.
    public init(creating path: String, rewritesHeader: Bool = false) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileError.cannotWrite(path: path, reason: String(cString: strerror(errno))) }
        headerPending = rewritesHeader
        do { digest = try TrailingDigest(following: path) } catch { close(fd); throw error }
        buffer.reserveCapacity(bufferCapacity)
    }

    deinit {
        if sha256 == nil { digest.cancel() }
        close(fd)
    }

    /// Bytes handed to the kernel so far (written or copied, not counting the buffer).
    private var flushedBytes: Int { bytesWritten - buffer.count }

    /// Tells the digest how far the file is final.
    private func publish() {
        if !headerPending { digest.advance(to: flushedBytes) }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        if buffer.count + bytes.count <= bufferCapacity {
            buffer.append(contentsOf: bytes)
        } else {
            try flush()
            if bytes.count >= bufferCapacity { try writeAll(bytes) } else { buffer.append(contentsOf: bytes) }
        }
        bytesWritten += bytes.count
        publish()
        startWriteback()
    }

    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    public func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
        publish()
    }

    /// Appends `tensor`'s bytes: copied by the kernel from its source file when it has one
    /// (`copy_file_range`, falling back to read/write where the file systems cannot), else
    /// streamed from `produce`. Checks the byte count either way.
    public func append(_ tensor: OutputTensor) throws {
        let before = bytesWritten
        if let range = tensor.fileRange {
            try copy(from: range.path, offset: range.offset, count: tensor.byteCount)
        } else {
            try tensor.produce { try write($0) }
        }
        guard bytesWritten - before == tensor.byteCount else {
            throw WriterError.sizeMismatch(path: path, tensor: tensor.name, expected: tensor.byteCount, produced: bytesWritten - before)
        }
    }

    /// Appends `count` bytes of `source` from `offset`.
    func copy(from source: String, offset: Int, count: Int) throws {
        try flush()
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw FileError.cannotOpen(path: source, reason: String(cString: strerror(errno))) }
        defer { close(input) }
        var position = Int64(offset)
        var left = count
        while left > 0 {
            try Interruption.check(path)
            let n = Int(nopekit_copy_file_range(input, &position, fd, UInt(min(left, 64 << 20))))
            if n < 0 {
                if errno == EINTR { continue }
                if [EXDEV, ENOSYS, EINVAL, EOPNOTSUPP].contains(errno) { break }  // copy below
                throw error(errno)
            }
            if n == 0 { throw FileError.cannotOpen(path: source, reason: "ends before byte \(Int(position)) (truncated while copying?)") }
            left -= n
            bytesWritten += n
            publish()
            startWriteback()
        }
        var chunk = [UInt8](repeating: 0, count: min(left, 8 << 20))
        while left > 0 {
            let n = chunk.withUnsafeMutableBytes { pread(input, $0.baseAddress!, min(left, $0.count), off_t(position)) }
            if n < 0 { if errno == EINTR { continue }; throw FileError.cannotOpen(path: source, reason: String(cString: strerror(errno))) }
            if n == 0 { throw FileError.cannotOpen(path: source, reason: "ends before byte \(Int(position)) (truncated while copying?)") }
            try chunk.withUnsafeBytes { try writeAll(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            position += Int64(n)
            left -= n
            bytesWritten += n
            publish()
        }
    }

    /// Starts writeback of every whole 64 MiB written since the last call, so disk writes
    /// overlap the copying instead of all waiting for `finish`. Advisory: errors are ignored
    /// here and reported by `finish`'s fdatasync.
    private func startWriteback() {
        let flushed = flushedBytes
        guard flushed - writebackStarted >= Self.writebackStep else { return }
        _ = nopekit_start_writeback(fd, Int64(writebackStarted), Int64(flushed - writebackStarted))
        writebackStarted = flushed
    }

    /// Replaces bytes already written at `offset` (a header completed after the data), without
    /// moving the write position.
    public func overwrite(_ bytes: [UInt8], at offset: Int) throws {
        precondition(headerPending, "overwrite of \(path) after its bytes were hashed: create it with rewritesHeader")
        try flush()
        precondition(offset + bytes.count <= bytesWritten, "overwrite past the end of \(path)")
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, bytes.count - done, off_t(offset + done)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw error(errno)
            }
            done += n
        }
        headerPending = false
        publish()
    }

    /// Flushes and forces the data to disk, so the rename that follows publishes a whole file,
    /// and waits for the digest (hashed meanwhile), which `WrittenDigests` then remembers.
    public func finish() throws {
        try flush()
        headerPending = false
        publish()
        if fdatasync(fd) != 0 { throw error(errno) }
        let digest = try self.digest.finish(length: bytesWritten)
        sha256 = digest
        WrittenDigests.record(digest, for: path)
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            try Interruption.check(path)
            let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw error(errno)
            }
            done += n
        }
    }

    private func error(_ code: Int32) -> FileError {
        let shown = AtomicOutput.publicPath(path)
        switch code {
        case ENOSPC, EDQUOT: return .diskFull(path: shown)
        case EFBIG: return .cannotWrite(path: shown, reason: "the file size limit was reached (ulimit -f, or the file system's largest file)")
        default: return .cannotWrite(path: shown, reason: String(cString: strerror(code)))
        }
    }
}
