import Dispatch
import Foundation

/// `nopekit inspect --verify`: whether a checkpoint (or any nopekit output) is still what was
/// written, and whether its weights are all finite.
///
/// Two independent passes, run side by side on two threads:
/// - the files are re-hashed against the checksum record beside them (`ChecksumManifest`:
///   `SHA256SUMS` in a folder, `NAME.sha256` beside a file), which catches a truncated copy,
///   a flipped bit or an edit;
/// - every floating-point tensor is decoded (quantised blocks dequantised) and scanned for NaN
///   and ±Inf, reported by tensor name, since one such weight turns every output into NaN.
///   This needs no record, so it also checks checkpoints other tools wrote.
public enum IntegrityCheck {
    /// A tensor holding non-finite values.
    public struct NonFinite: Equatable, Sendable {
        public var tensor: String
        public var count: Int
        /// Flat index (row-major, HF order) of the first one.
        public var firstIndex: Int
    }

    public struct Report {
        public var path: String
        /// The checksum record used, nil when none was found.
        public var manifest: String?
        public var checks: [ChecksumManifest.Check]
        /// Files in the folder that the record does not list (a README added later, say):
        /// shown, not counted as problems.
        public var unlisted: [String]
        /// Nil when the path is not a checkpoint (a report folder); `notScanned` says why.
        public var scanned: (tensors: Int, elements: Int)?
        public var notScanned: String?
        public var nonFinite: [NonFinite]

        /// Mismatched, missing or unreadable files plus tensors with non-finite values.
        public var problemCount: Int { checks.filter { $0.status != .ok }.count + nonFinite.count }

        public var json: JSONValue {
            var members = [JSONMember("path", .string(path)),
                           JSONMember("checksum_record", manifest.map { .string($0) } ?? .null),
                           JSONMember("files", .array(checks.map { c in
                               var m = [JSONMember("path", .string(c.entry.path)), JSONMember("recorded", .string(c.entry.sha256))]
                               switch c.status {
                               case .ok: m.append(JSONMember("status", .string("ok")))
                               case .mismatch(let actual): m += [JSONMember("status", .string("mismatch")), JSONMember("actual", .string(actual))]
                               case .missing: m.append(JSONMember("status", .string("missing")))
                               case .unreadable(let reason): m += [JSONMember("status", .string("unreadable")), JSONMember("reason", .string(reason))]
                               }
                               return .object(m)
                           })),
                           JSONMember("unlisted_files", .array(unlisted.map { .string($0) }))]
            if let scanned {
                members.append(JSONMember("tensors_scanned", .int(scanned.tensors)))
                members.append(JSONMember("values_scanned", .int(scanned.elements)))
            } else {
                members.append(JSONMember("not_scanned", .string(notScanned ?? "")))
            }
            members.append(JSONMember("non_finite", .array(nonFinite.map {
                .object([JSONMember("tensor", .string($0.tensor)), JSONMember("count", .int($0.count)), JSONMember("first_index", .int($0.firstIndex))])
            })))
            members.append(JSONMember("problems", .int(problemCount)))
            return .object(members)
        }
    }

    /// Checks `path` (a folder or a file). Throws only when there is nothing to check: no
    /// checksum record and no checkpoint that opens. `progress` gets a line per file hashed
    /// (from another thread).
    public static func run(_ path: String, progress: @escaping @Sendable (String) -> Void = { _ in }) throws -> Report {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw FileError.cannotOpen(path: path, reason: "no such file or folder")
        }
        let location = ChecksumManifest.location(for: path)
        var manifest = try location.map { try ChecksumManifest.parse(try SmallFile.read($0), file: $0) }
        if !isDir.boolValue, location?.hasSuffix("/" + ChecksumManifest.folderFileName) == true {
            // A file of a folder output: its own line of the folder's record.
            let name = (path as NSString).lastPathComponent
            manifest = manifest.map { ChecksumManifest($0.entries.filter { $0.path == name }) }
        }
        let base = location.map { ($0 as NSString).deletingLastPathComponent } ?? path

        // Pass 1, on a second thread: re-hash the recorded files.
        let hashing = DispatchGroup()
        nonisolated(unsafe) var checks: [ChecksumManifest.Check] = []
        if let manifest {
            DispatchQueue.global(qos: .userInitiated).async(group: hashing) {
                checks = manifest.check(in: base) { progress("hashing \($0)") }
            }
        }
        var unlisted: [String] = []
        if let manifest, isDir.boolValue {
            let listed = Set(manifest.entries.map(\.path))
            unlisted = try ChecksumManifest.regularFiles(under: path).filter { $0 != ChecksumManifest.folderFileName && !listed.contains($0) }.sorted()
        }

        // Pass 2, here: scan the tensors.
        var report = Report(path: path, manifest: location, checks: [], unlisted: unlisted, scanned: nil, notScanned: nil, nonFinite: [])
        do {
            let store = try Checkpoint.open(path).store
            report.nonFinite = try scan(store)
            report.scanned = (store.tensors.count, store.tensors.reduce(0) { $0 + $1.elementCount })
        } catch {
            hashing.wait()
            guard manifest != nil else { throw error }
            report.notScanned = "\(error)"
        }
        hashing.wait()
        report.checks = checks
        return report
    }

    /// Every floating-point tensor's non-finite values, decoded chunk by chunk (8 MiB of stored
    /// bytes at a time, so memory stays flat); integer tensors cannot hold any.
    public static func scan(_ store: any TensorStore) throws -> [NonFinite] {
        var found: [NonFinite] = []
        var values = [Float]()
        for t in store.tensors {
            if let d = t.type.plainType, !d.isFloat { continue }
            let unitElements: Int
            switch t.type {
            case .plain: unitElements = 1
            case .quantized(let q): unitElements = q.blockElements
            }
            var count = 0, first = -1, index = 0
            try store.forEachChunk(t.name, chunkBytes: 8 << 20) { chunk in
                let n = chunk.count / t.type.unitBytes * unitElements
                if values.count < n { values = [Float](repeating: 0, count: n) }
                try values.withUnsafeMutableBufferPointer { buf in
                    try t.type.decode(chunk.baseAddress!, count: n, into: buf.baseAddress!)
                    for i in 0..<n where !buf[i].isFinite {
                        if first < 0 { first = index + i }
                        count += 1
                    }
                }
                index += n
            }
            if count > 0 { found.append(NonFinite(tensor: t.name, count: count, firstIndex: first)) }
        }
        return found
    }
}
