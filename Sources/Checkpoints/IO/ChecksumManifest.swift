import Foundation

/// The checksums an output records of itself, in coreutils' `sha256sum` format, so
/// `sha256sum -c` checks an output without nopekit and its digests are the ones the Hugging
/// Face Hub shows for LFS files.
///
/// - A folder output carries `SHA256SUMS` at its root, listing every file beneath it (written
///   last, inside the temporary folder, so it is published with the folder).
/// - A file output `X` (a GGUF file with all its split parts, a single `.safetensors`) has
///   `X.sha256` beside it, written right after the file is published.
///
/// The record lives beside the weights rather than in their headers, so the weight files stay
/// byte-identical to what the reference writers produce (the interop checks hold them to it).
///
/// Format: one line per file, `<64 hex digits>  <path relative to the manifest's folder>`,
/// sorted by path bytes. A path holding a backslash, a newline or a carriage return is
/// escaped (`\\`, `\n`, `\r`) and its line starts with `\`, as sha256sum writes it. Reading also
/// accepts sha256sum's binary marker (`<hex> *<path>`) and upper-case digits.
public struct ChecksumManifest: Equatable {
    public static let folderFileName = "SHA256SUMS"
    public static let sidecarSuffix = ".sha256"

    public struct Entry: Equatable {
        public var path: String
        public var sha256: String

        public init(path: String, sha256: String) {
            self.path = path
            self.sha256 = sha256
        }
    }

    /// Entries sorted by path bytes.
    public private(set) var entries: [Entry]

    public init(_ entries: [Entry]) {
        self.entries = entries.sorted { Array($0.path.utf8).lexicographicallyPrecedes(Array($1.path.utf8)) }
    }

    // MARK: - Text

    public var text: String {
        entries.map { e in
            let escaped = e.path.contains(where: { $0 == "\\" || $0 == "\n" || $0 == "\r" })
            let path = escaped ? e.path.replacingOccurrences(of: "\\", with: "\\\\")
                .replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\r", with: "\\r") : e.path
            return (escaped ? "\\" : "") + e.sha256 + "  " + path + "\n"
        }.joined()
    }

    /// Parses manifest text; `file` names it in errors. Every line must be an entry (no blank
    /// lines or comments, which sha256sum would also report), each path relative and inside the
    /// manifest's folder, none listed twice.
    public static func parse(_ bytes: [UInt8], file: String) throws -> ChecksumManifest {
        guard let text = String(validating: bytes, as: UTF8.self) else { throw ManifestError.malformed(path: file, line: 1, reason: "not UTF-8 text") }
        var entries: [Entry] = []
        var seen = Set<String>()
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        for (i, raw) in lines.enumerated() {
            func bad(_ reason: String) -> ManifestError { .malformed(path: file, line: i + 1, reason: reason) }
            var line = Substring(raw)
            let escaped = line.hasPrefix("\\")
            if escaped { line = line.dropFirst() }
            let digest = line.prefix(64)
            guard digest.count == 64, digest.utf8.allSatisfy({ isHexDigit($0) }) else { throw bad("expected 64 hex digits, two spaces (or ' *') and a path") }
            let rest = line.dropFirst(64)
            guard rest.hasPrefix("  ") || rest.hasPrefix(" *") else { throw bad("expected two spaces (or ' *') after the digest") }
            var path = String(rest.dropFirst(2))
            if escaped { path = try unescape(path, or: bad("a bad escape in the path")) }
            let parts = path.split(separator: "/", omittingEmptySubsequences: false)
            guard !path.isEmpty, !path.hasPrefix("/"), !parts.contains(".."), !parts.contains("") else {
                throw bad("the path '\(path)' is not a relative path inside the folder")
            }
            guard seen.insert(path).inserted else { throw bad("'\(path)' is listed twice") }
            entries.append(Entry(path: path, sha256: digest.lowercased()))
        }
        return ChecksumManifest(entries)
    }

    private static func isHexDigit(_ c: UInt8) -> Bool {
        (48...57).contains(c) || (97...102).contains(c) || (65...70).contains(c)
    }

    private static func unescape(_ s: String, or error: ManifestError) throws -> String {
        var out = ""
        var it = s.makeIterator()
        while let c = it.next() {
            guard c == "\\" else { out.append(c); continue }
            switch it.next() {
            case "\\": out.append("\\")
            case "n": out.append("\n")
            case "r": out.append("\r")
            default: throw error
            }
        }
        return out
    }

    // MARK: - Writing

    /// The SHA-256 of a file to record: remembered from writing it when this process just did
    /// (`WrittenDigests`, so a 10 GB output is not read again), else read.
    static func digest(of path: String) throws -> String { try WrittenDigests.sha256(of: path) }

    /// The files `names` (relative to `folder`), each with its digest.
    public static func of(_ names: [String], in folder: String) throws -> ChecksumManifest {
        ChecksumManifest(try names.map { Entry(path: $0, sha256: try digest(of: (folder as NSString).appendingPathComponent($0))) })
    }

    /// Every regular file under `folder` (except its own `SHA256SUMS`), with its digest.
    public static func of(folder: String) throws -> ChecksumManifest {
        try of(try regularFiles(under: folder).filter { $0 != folderFileName }, in: folder)
    }

    /// Relative paths of the regular files under `folder`, recursively (links not followed).
    static func regularFiles(under folder: String) throws -> [String] {
        let fm = FileManager.default
        guard let names = fm.enumerator(atPath: folder) else {
            throw FileError.cannotOpen(path: folder, reason: "not a readable folder")
        }
        var files: [String] = []
        while let name = names.nextObject() as? String {
            if (names.fileAttributes?[.type] as? FileAttributeType) == .typeRegular { files.append(name) }
        }
        return files
    }

    /// Writes `folder/SHA256SUMS` listing every file beneath `folder`, replacing an older one.
    public static func writeForFolder(_ folder: String) throws {
        let manifest = try of(folder: folder)
        try AtomicOutput.write(Array(manifest.text.utf8), to: (folder as NSString).appendingPathComponent(folderFileName), replacing: true)
    }

    /// Writes `X.sha256` beside the output `X` made of `files` (X itself, or its split parts),
    /// each given by its path and listed by its name.
    public static func writeSidecar(for output: String, files: [String]) throws {
        let manifest = try of(files.map { ($0 as NSString).lastPathComponent }, in: (output as NSString).deletingLastPathComponent)
        try AtomicOutput.write(Array(manifest.text.utf8), to: output + sidecarSuffix, replacing: true)
    }

    /// Removes a sidecar left from an earlier file at `output` (its file is gone, since outputs
    /// never replace files), so a write killed before its own sidecar leaves none rather than
    /// a stale one.
    public static func removeStaleSidecar(of output: String) {
        unlink(output + sidecarSuffix)
    }

    // MARK: - Finding and checking

    /// Where the manifest covering `path` lives: `path/SHA256SUMS` for a folder; `path.sha256`
    /// beside a file, or for a split GGUF part (`NAME-00001-of-00003.gguf`) the set's
    /// `NAME.gguf.sha256`, or the `SHA256SUMS` of the folder holding the file when it lists
    /// it. Nil when there is none.
    public static func location(for path: String) -> String? {
        var isDir: ObjCBool = false
        let fm = FileManager.default
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else { return nil }
        var candidates = isDir.boolValue ? [(path as NSString).appendingPathComponent(folderFileName)] : [path + sidecarSuffix]
        if !isDir.boolValue, let stem = GGUFSplitName.stem(of: path) {
            candidates += [stem + ".gguf" + sidecarSuffix, stem + sidecarSuffix]
        }
        if let found = candidates.first(where: { fm.fileExists(atPath: $0) }) { return found }
        let folderRecord = ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent(folderFileName)
        guard !isDir.boolValue, let bytes = try? SmallFile.read(folderRecord),
              let record = try? parse(bytes, file: folderRecord),
              record.entries.contains(where: { $0.path == (path as NSString).lastPathComponent }) else { return nil }
        return folderRecord
    }

    /// The outcome for one listed file.
    public enum Status: Equatable {
        case ok
        case mismatch(actual: String)
        case missing
        case unreadable(reason: String)
    }

    public struct Check: Equatable {
        public var entry: Entry
        public var status: Status
    }

    /// Re-hashes every listed file, relative to `folder`; `progress` is told each path first.
    public func check(in folder: String, progress: (String) -> Void = { _ in }) -> [Check] {
        entries.map { e in
            progress(e.path)
            let path = (folder as NSString).appendingPathComponent(e.path)
            guard FileManager.default.fileExists(atPath: path) else { return Check(entry: e, status: .missing) }
            do {
                let actual = try SHA256.file(path)
                return Check(entry: e, status: actual == e.sha256 ? .ok : .mismatch(actual: actual))
            } catch {
                return Check(entry: e, status: .unreadable(reason: "\(error)"))
            }
        }
    }
}

/// Split GGUF part names, `NAME-00001-of-00003.gguf` (llama.cpp's and gguf-py's).
enum GGUFSplitName {
    /// `NAME` for a split part's path, nil for any other path.
    static func stem(of path: String) -> String? {
        guard path.hasSuffix(".gguf") else { return nil }
        let base = path.dropLast(5)
        let tail = base.suffix(15)  // -00001-of-00003
        guard tail.count == 15, tail.hasPrefix("-"), Array(tail)[6...9] == ["-", "o", "f", "-"],
              tail.dropFirst().prefix(5).allSatisfy(\.isNumber), tail.suffix(5).allSatisfy(\.isNumber) else { return nil }
        return String(base.dropLast(15))
    }
}

public enum ManifestError: Error, CustomStringConvertible, Equatable {
    case malformed(path: String, line: Int, reason: String)

    public var description: String {
        switch self {
        case .malformed(let p, let l, let r):
            return "\(p), line \(l): \(r). The checksum record is damaged; compare the files by hand with `sha256sum`, or write the output again"
        }
    }
}
