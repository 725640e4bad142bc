import Checkpoints
import Foundation

/// A file of token ids: a JSON array of integers, or raw little-endian uint32 values.
public enum TokenFile {
    public static func read(_ path: String) throws -> [Int] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw TokenizerError.unreadable(file: path, detail: error.localizedDescription)
        }
        let bytes = [UInt8](data)
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
