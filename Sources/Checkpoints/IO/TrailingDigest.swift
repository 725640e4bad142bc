#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The SHA-256 of a file being written, computed on a second thread that reads the file back
/// just behind the writer, so hashing a 10 GB output overlaps writing it instead of following it.
///
/// Reading back (from the page cache) rather than hashing the writer's buffers covers bytes the
/// kernel copied with `copy_file_range`, which never pass through user memory, and hashes what
/// actually reached the file. The writer says how far the file is final (`advance`), then
/// `finish`es; bytes it will still rewrite (a header completed after the data) are simply not
/// declared final until they are.
final class TrailingDigest: @unchecked Sendable {
    private let path: String
    private let fd: Int32
    private let condition = NSCondition()
    // Guarded by `condition`:
    private var final = 0         // bytes [0, final) will not change
    private var closed = false    // `final` is the file's length
    private var cancelled = false
    private var result: Result<String, Error>?

    /// Starts following `path`, which the caller is writing.
    init(following path: String) throws {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        let thread = Thread { [self] in run() }
        thread.name = "nopekit-digest"
        thread.start()
    }

    deinit { close(fd) }

    /// Declares bytes [0, `length`) final.
    func advance(to length: Int) {
        condition.withLock {
            if length > final { final = length; condition.signal() }
        }
    }

    /// Declares the file complete at `length` bytes and waits for its digest.
    func finish(length: Int) throws -> String {
        condition.lock()
        final = length
        closed = true
        condition.signal()
        while result == nil { condition.wait() }
        let r = result!
        condition.unlock()
        return try r.get()
    }

    /// Stops the thread at its next read (the output is being abandoned) and waits for it to
    /// leave libcrypto: a process that exits with the thread still inside it can crash in
    /// libcrypto's exit handlers, turning an error message into a core dump.
    func cancel() {
        condition.lock()
        cancelled = true
        condition.signal()
        while result == nil { condition.wait() }
        condition.unlock()
    }

    private func run() {
        let hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 4 << 20)
        var position = 0
        let outcome: Result<String, Error> = Result {
            while true {
                condition.lock()
                while position == final && !closed && !cancelled { condition.wait() }
                let (end, done, stop) = (final, closed, cancelled)
                condition.unlock()
                if stop { throw CancellationError() }
                if position == end && done { return hasher.finish() }
                let want = min(end - position, buffer.count)
                let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, want, off_t(position)) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw FileError.cannotOpen(path: AtomicOutput.publicPath(path), reason: String(cString: strerror(errno)))
                }
                if n == 0 { throw FileError.cannotOpen(path: AtomicOutput.publicPath(path), reason: "shorter than the \(end) bytes written (changed by another process?)") }
                buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                position += n
            }
        }
        condition.withLock { result = outcome; condition.broadcast() }
    }
}

/// Digests of the files this process wrote, by file identity, so a manifest written beside
/// them (`ChecksumManifest`) need not read them a second time. A renamed file keeps its
/// identity (device, inode, size, modification time); any other file is hashed afresh.
enum WrittenDigests {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var digests: [ChecksumCache.Identity.Content: String] = [:]

    static func record(_ digest: String, for path: String) {
        guard let id = ChecksumCache.Identity(path) else { return }
        lock.withLock { digests[id.content] = digest }
    }

    /// The digest recorded for `path` if it is still the file that was written, else its
    /// SHA-256 read afresh.
    static func sha256(of path: String) throws -> String {
        if let id = ChecksumCache.Identity(path), let d = lock.withLock({ digests[id.content] }) { return d }
        return try SHA256.file(path)
    }
}
