import Checkpoints
import Foundation

/// A file of token ids: a JSON array of integers, or raw little-endian uint32 values.
public enum TokenFile {
    public static func read(_ path: String) throws -> [Int] {
        let bytes: [UInt8]
        do { bytes = try SmallFile.read(path, limit: 16 << 30) } catch {
            throw TokenizerError.badData(file: path, detail: "cannot read: \(error)")
        }
        if let first = bytes.first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }), first == UInt8(ascii: "[") {
            guard let items = (try? JSONReader.parse(bytes))?.arrayValue else {
                throw TokenizerError.invalid(file: path, detail: "starts with '[' but is not a JSON array")
            }
            let ids = items.compactMap(\.intValue)
            guard ids.count == items.count, ids.allSatisfy({ $0 >= 0 }) else {
                throw TokenizerError.invalid(file: path, detail: "the JSON array must hold non-negative integers only")
            }
            return ids
        }
        guard bytes.count % 4 == 0 else {
            throw TokenizerError.invalid(file: path, detail: "neither a JSON array nor raw uint32 ids (\(bytes.count) bytes is not a multiple of 4)")
        }
        return bytes.withUnsafeBytes { raw in
            (0..<(bytes.count / 4)).map { Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        }
    }
}

/// Evaluation or calibration data as one token stream, whatever form it comes in: plain UTF-8
/// text, JSONL with a `text` field per line (documents joined by EOS where the tokenizer has
/// one), or a token file (JSON array or raw little-endian uint32; `.tokens`, `.bin`, `.u32` or
/// `.json`). Text is tokenized without special tokens: callers put BOS where their protocol
/// wants it.
public enum TokenStream {
    public enum Format: String, Sendable { case text, jsonl, tokens }

    public static func format(of path: String) -> Format {
        let ext = (path as NSString).pathExtension.lowercased()
        if ext == "jsonl" { return .jsonl }
        if ["tokens", "bin", "json", "u32"].contains(ext) { return .tokens }
        return .text
    }

    /// A UTF-8 text file, or an error naming it (not Foundation's bare NSCocoaErrorDomain code).
    public static func readText(_ path: String) throws -> String {
        let data: [UInt8]
        do { data = try SmallFile.read(path, limit: 16 << 30) } catch {
            throw TokenizerError.badData(file: path, detail: "cannot read: \(error)")
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw TokenizerError.badData(file: path, detail: "not UTF-8 text (convert it, e.g. with iconv, or give a token file)")
        }
        return text
    }

    public static func read(_ path: String, tokenizer: Tokenizer?) throws -> (ids: [Int], format: Format) {
        let format = Self.format(of: path)
        if format == .tokens { return (try TokenFile.read(path), format) }
        guard let tokenizer else { throw TokenizerError.badData(file: path, detail: "the model has no tokenizer; give a token file") }
        let text = try readText(path)
        if format == .text { return (tokenizer.encode(text, addSpecialTokens: false), format) }
        var ids: [Int] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            guard let json = try? JSONReader.parse(String(line)), let body = json["text"]?.stringValue else {
                throw TokenizerError.badData(file: path, detail: "line \(n + 1) is not a JSON object with a \"text\" string")
            }
            ids += tokenizer.encode(body, addSpecialTokens: false)
            if let eos = tokenizer.eosID { ids.append(eos) }
        }
        return (ids, format)
    }
}
