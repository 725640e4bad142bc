import Foundation
import Testing
@testable import Checkpoints

/// SHA-256 against Python's hashlib (values noted beside each case).
@Suite struct SHA256Tests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures")

    @Test func knownVectors() {
        let empty = SHA256()
        #expect(empty.finish() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")  // hashlib.sha256(b'')
        // hashlib.sha256(b'a'*1000 + b'bc'*37): several blocks, fed in uneven pieces
        let bytes = [UInt8](repeating: 97, count: 1000) + Array(String(repeating: "bc", count: 37).utf8)
        let pieces = SHA256()
        var i = 0
        for size in [1, 63, 64, 65, 7, 500, 1000] where i < bytes.count {
            pieces.update(Array(bytes[i..<min(bytes.count, i + size)]))
            i += size
        }
        #expect(pieces.finish() == "53d1e2860d546faf8a493e7b334647e3e0686276f3f27fea089bbfd6ad62ad1f")
    }

    @Test func filesAndShardedCheckpoints() throws {
        // hashlib.sha256(open(path, 'rb').read()).hexdigest()
        #expect(try SHA256.file(Self.root.appendingPathComponent("safetensors/dtypes.safetensors").path)
                == "9e73b92913b7cbceda99f8036bb14d00672b02ec675e28fdcba40961a72e4a48")
        // the SHA-256 of the three shards' `sha256sum` lines
        let folder = Self.root.appendingPathComponent("safetensors/sharded").path
        let shards = (1...3).map { "\(folder)/model-0000\($0)-of-00003.safetensors" }
        #expect(try SHA256.checkpoint(files: shards.reversed()) == "3ece1de62a91b0f6d3f0c5a4c04f215129c458ff9f39127fd52782084fb9c126")
    }
}

/// The checksum cache trusts a remembered digest only while the file's identity (device, inode,
/// size, mtime, ctime) is unchanged.
@Suite struct ChecksumCacheTests {
    static func scratch() throws -> String {
        let dir = NSTemporaryDirectory() + "nopekit-cache-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func remembersUntilTheFileChanges() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/w.bin", folder = dir + "/cache"
        try Data("first version".utf8).write(to: URL(fileURLWithPath: file))
        let cache = ChecksumCache(folder: folder, racyWindow: 0)
        let digest = try cache.sha256(of: file)
        #expect(digest == (try SHA256.file(file)))
        // The entry is what a second call reads: plant a different digest there and it comes back.
        let entries = try FileManager.default.contentsOfDirectory(atPath: folder)
        #expect(entries.count == 1)
        let planted = String(repeating: "a", count: 64)
        try Data(planted.utf8).write(to: URL(fileURLWithPath: folder + "/" + entries[0]))
        #expect(try cache.sha256(of: file) == planted)
        // Same size, new content, mtime put back: the ctime moved, so the file is hashed anew.
        var before = stat()
        _ = stat(file, &before)
        try Data("other version".utf8).write(to: URL(fileURLWithPath: file))
        var times = [timespec(tv_sec: before.st_atim.tv_sec, tv_nsec: before.st_atim.tv_nsec),
                     timespec(tv_sec: before.st_mtim.tv_sec, tv_nsec: before.st_mtim.tv_nsec)]
        #expect(utimensat(AT_FDCWD, file, &times, 0) == 0)
        let fresh = try cache.sha256(of: file)
        #expect(fresh == (try SHA256.file(file)) && fresh != digest && fresh != planted)
        // A garbled entry is ignored, not trusted.
        for name in try FileManager.default.contentsOfDirectory(atPath: folder) {
            try Data("not hex".utf8).write(to: URL(fileURLWithPath: folder + "/" + name))
        }
        #expect(try cache.sha256(of: file) == fresh)
    }

    @Test func aFileChangedJustNowIsNotRemembered() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/w.bin", folder = dir + "/cache"
        try Data("just written".utf8).write(to: URL(fileURLWithPath: file))
        _ = try ChecksumCache(folder: folder).sha256(of: file)  // the default two-second window
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).isEmpty)
        _ = try ChecksumCache(folder: nil, racyWindow: 0).sha256(of: file)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).isEmpty)
    }
}
