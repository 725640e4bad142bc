import Checkpoints
import Foundation

/// What every fuzz target does with one input.
public enum FuzzInput {
    /// A private directory for this fuzzing process (tmpfs when there is one: the checkpoint
    /// readers open files, and the input must reach them through one).
    static let directory: String = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let dir = base + "/nopekit-fuzz-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()

    /// Writes the input to a file named `name` and calls `body` with its path: the readers
    /// map files, so this is the path a downloaded checkpoint takes.
    public static func withFile(_ bytes: UnsafeRawBufferPointer, named name: String, _ body: (String) throws -> Void) {
        let path = directory + "/" + name
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        precondition(fd >= 0, "cannot write the fuzz input to \(path)")
        var written = 0
        while written < bytes.count {
            let n = write(fd, bytes.baseAddress! + written, bytes.count - written)
            precondition(n > 0, "cannot write the fuzz input to \(path)")
            written += n
        }
        close(fd)
        do { try body(path) } catch {
            _ = String(describing: error)  // every error must render without trapping
        }
    }

    /// The input as a string, as a JSON or text reader would get it.
    public static func text(_ bytes: UnsafeRawBufferPointer) -> String { String(decoding: bytes, as: UTF8.self) }

    /// Uses a store the way the engine and the bake do: every tensor's raw bytes, and the
    /// values of each small tensor widened to F32 (a crafted header must not make a read go
    /// past the mapping, nor a decode past the bytes it was given).
    public static func exercise(_ store: any TensorStore) throws {
        for t in store.tensors {
            _ = store.lookup(t.name)
            try store.withRawBytes(t.name) { raw in
                precondition(raw.count == t.byteCount, "\(t.name): \(raw.count) bytes handed out for \(t.byteCount) declared")
                if raw.count > 0 { _ = raw[0] &+ raw[raw.count - 1] }
            }
            if t.elementCount <= 1 << 16 { _ = try store.readF32(t.name) }
        }
    }
}

extension FuzzInput {
    /// The input libFuzzer hands over, as a buffer (it may pass a null pointer for no bytes).
    public static func bytes(_ start: UnsafePointer<UInt8>?, _ count: Int) -> UnsafeRawBufferPointer {
        guard let start, count > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: start, count: count)
    }
}
