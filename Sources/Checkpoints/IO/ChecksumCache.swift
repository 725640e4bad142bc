import Foundation

/// SHA-256 digests of weight files remembered by the file's identity, so a checkpoint is
/// hashed once per version rather than by every command that records it (`search` writes the
/// source's checksum into its table, `bake` into its output: without the cache, `extend`
/// reads a 14 GB model twice just to hash it, and a bake runs at the hash's 1.3 GB/s instead
/// of the disk's speed).
///
/// The identity is what git's index and DVC's cache trust: device, inode, size, and the
/// modification and status-change times in nanoseconds. Rewriting a file changes its mtime and
/// ctime; resetting the mtime (`touch -d`) still moves the ctime, which no user can set. As git
/// does against "racy" entries, a file changed within the last two seconds is hashed but not
/// remembered (a write in the same clock tick would not move its times), nor is one whose
/// identity changed while it was being hashed.
///
/// Entries are small files (`<cache>/sha256/<key>`, 64 hex digits each) under
/// `$NOPEKIT_CACHE_DIR`, else `$XDG_CACHE_HOME/nopekit`, else `~/.cache/nopekit`; any error
/// reading or writing them just means hashing again. `NOPEKIT_CACHE_DIR=off` disables it.
public struct ChecksumCache: Sendable {
    /// The folder holding the entries, or nil when caching is off.
    public let folder: String?
    /// Seconds a file must have been left alone before its digest is remembered.
    public let racyWindow: Double

    public init(folder: String?, racyWindow: Double = 2) {
        self.folder = folder
        self.racyWindow = racyWindow
    }

    /// The cache the environment names.
    public static var standard: ChecksumCache {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["NOPEKIT_CACHE_DIR"] { return ChecksumCache(folder: dir == "off" || dir.isEmpty ? nil : dir + "/sha256") }
        let base = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (NSHomeDirectory() + "/.cache")
        return ChecksumCache(folder: base + "/nopekit/sha256")
    }

    /// A file's identity: what must not change for a remembered digest to hold.
    struct Identity: Equatable {
        var device: UInt64, inode: UInt64, size: Int64
        var modified: Int64, changed: Int64  // nanoseconds since 1970

        init?(_ path: String) {
            var s = stat()
            guard stat(path, &s) == 0, (s.st_mode & S_IFMT) == S_IFREG else { return nil }
            device = UInt64(s.st_dev)
            inode = UInt64(s.st_ino)
            size = Int64(s.st_size)
            modified = Int64(s.st_mtim.tv_sec) * 1_000_000_000 + Int64(s.st_mtim.tv_nsec)
            changed = Int64(s.st_ctim.tv_sec) * 1_000_000_000 + Int64(s.st_ctim.tv_nsec)
        }

        /// What a rename leaves unchanged (it moves the status-change time): enough to know,
        /// within one process, that a file is still the one it wrote.
        struct Content: Hashable { var device: UInt64, inode: UInt64, size: Int64, modified: Int64 }
        var content: Content { Content(device: device, inode: inode, size: size, modified: modified) }

        var key: String {
            let h = SHA256()
            h.update(Array("\(device):\(inode):\(size):\(modified):\(changed)".utf8))
            return h.finish()
        }
    }

    /// The digest remembered for `path` while its identity is unchanged, without hashing.
    public func remembered(_ path: String) -> String? {
        Identity(path).flatMap(remembered)
    }

    private func remembered(_ id: Identity) -> String? {
        guard let folder, let bytes = try? SmallFile.read(folder + "/" + id.key), bytes.count == 64,
              bytes.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The digest of `path`: remembered when its identity is unchanged, else computed (with
    /// `stop` asked between reads) and remembered.
    public func sha256(of path: String, stop: () -> Bool = { false }) throws -> String {
        guard let folder, let before = Identity(path) else { return try SHA256.file(path, stop: stop) }
        if let known = remembered(before) { return known }
        let entry = folder + "/" + before.key
        let started = Int64(Date().timeIntervalSince1970 * 1e9)
        let digest = try SHA256.file(path, stop: stop)
        if Identity(path) == before, max(before.modified, before.changed) < started - Int64(racyWindow * 1e9) {
            try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try? AtomicOutput.write(Array(digest.utf8), to: entry, replacing: true)
        }
        return digest
    }
}
