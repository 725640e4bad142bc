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
