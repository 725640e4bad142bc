#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reading a whole small file (config.json, tokenizer.json, an index, a table, a text): the
/// one path every such reader takes, so none of them can hang or allocate without bound.
///
/// - Opened non-blocking: a FIFO given as a config would otherwise block `open` forever.
/// - Only regular files (links followed): a FIFO, socket or device such as /dev/zero is refused
///   by name instead of being read until memory runs out.
/// - At most `limit` bytes (default 1 GiB, far above any tokenizer): larger is refused before
///   reading.
public enum SmallFile {
    public static let defaultLimit = 1 << 30

    public static func read(_ path: String, limit: Int = defaultLimit) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw FileError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FileError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw FileError.notARegularFile(path: path) }
        let size = Int(st.st_size)
        guard size <= limit else { throw FileError.cannotOpen(path: path, reason: "\(size) bytes, more than the \(limit) such a file may have") }
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + done, size - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw FileError.cannotOpen(path: path, reason: n == 0 ? "the file shrank while it was read" : String(cString: strerror(errno)))
            }
            done += n
        }
        return bytes
    }
}
