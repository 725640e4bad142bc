#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A read-only memory map of a whole file.
///
/// Why not `Data(contentsOf:options:.mappedIfSafe)`: on Linux that reads the file into memory.
/// A map costs nothing until pages are touched, and `release(_:)` hands touched pages back to
/// the kernel, so streaming a checkpoint larger than RAM keeps the resident set flat.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    private let base: UnsafeMutableRawPointer?

    /// Maps `path` read-only. Fails with a `FileError` naming the file.
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)  // a FIFO must not block the open
        guard fd >= 0 else { throw FileError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FileError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw FileError.notARegularFile(path: path) }
        size = Int(st.st_size)
        if size == 0 {
            base = nil
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw FileError.cannotMap(path: path, reason: String(cString: strerror(errno)))
        }
        base = p
    }

    deinit {
        if let base { munmap(base, size) }
    }

    /// All bytes of the file. Valid while `self` is alive.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }

    /// Drops the pages of `range` from this process's resident set. The data stays on disk and in
    /// the page cache; a later read maps it again. Used after each streamed chunk.
    public func release(_ range: Range<Int>) { advise(range, MADV_DONTNEED) }

    private func advise(_ range: Range<Int>, _ advice: Int32) {
        guard let base, !range.isEmpty else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = range.lowerBound / page * page
        let end = min(size, range.upperBound)
        guard end > start else { return }
        _ = madvise(base + start, end - start, advice)
    }
}

/// File-system failures, each naming the file and what to do.
public enum FileError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(path: String, reason: String)
    case notARegularFile(path: String)
    case cannotMap(path: String, reason: String)
    case cannotWrite(path: String, reason: String)
    case diskFull(path: String)
    case outputExists(path: String)
    case outputIsLink(path: String, target: String)
    case interrupted(path: String)

    public var description: String {
        switch self {
        case .cannotOpen(let p, let r): return "\(p): cannot open (\(r))"
        case .notARegularFile(let p): return "\(p): not a regular file"
        case .cannotMap(let p, let r): return "\(p): cannot memory-map (\(r))"
        case .cannotWrite(let p, let r): return "\(p): write failed (\(r)); nothing was left behind"
        case .diskFull(let p): return "\(p): no space left on device; free space or choose another output folder (nothing was left behind)"
        case .outputExists(let p): return "\(p): already exists; choose a new output path or remove it first (nopekit never overwrites)"
        case .outputIsLink(let p, let t): return "\(p): is a symbolic link (to \(t)), which writing would replace; give the path the output should have, or remove the link"
        case .interrupted(let p): return "\(p): interrupted; the partial output was removed"
        }
    }
}
