import Foundation
@testable import Checkpoints

/// Paths and helpers shared by the Checkpoints tests.
enum TestPaths {
    /// The repository root (three levels above this file).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func fixture(_ relative: String) -> String { root.appendingPathComponent("fixtures").appendingPathComponent(relative).path }

    /// A fresh empty folder under the system temp directory, removed by the caller's `defer`.
    static func temporaryFolder() throws -> String {
        let path = (NSTemporaryDirectory() as NSString).appendingPathComponent("nopekit-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A temporary copy of the sharded checkpoint folder `source` with its index file
    /// (`indexFileName`) re-written after `edit` changed the `weight_map`.
    static func shardedCopy(of source: String, indexFileName: String, editIndex edit: (inout [JSONMember]) -> Void) throws -> String {
        let copy = try temporaryFolder()
        for name in try FileManager.default.contentsOfDirectory(atPath: source) {
            try FileManager.default.copyItem(atPath: (source as NSString).appendingPathComponent(name),
                                             toPath: (copy as NSString).appendingPathComponent(name))
        }
        let indexPath = (copy as NSString).appendingPathComponent(indexFileName)
        let index = try JSONReader.parse(try readBytes(indexPath))
        var weightMap = index["weight_map"]?.objectValue ?? []
        edit(&weightMap)
        let edited = JSONValue.object([JSONMember("metadata", index["metadata"] ?? .null), JSONMember("weight_map", .object(weightMap))])
        try writeBytes(Array(JSONWriter.pretty(edited).utf8), to: indexPath)
        return copy
    }
}

extension Array where Element == Float {
    /// Bit-for-bit equality, with any NaN equal to any NaN.
    func sameBits(as other: [Float]) -> Bool {
        count == other.count && zip(self, other).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }
    }
}

/// Reads a whole file.
func readBytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

/// Writes bytes to a file.
func writeBytes(_ bytes: [UInt8], to path: String) throws { try Data(bytes).write(to: URL(fileURLWithPath: path)) }

/// The kind of a thrown error (`SafetensorsError.kind`), or its type name.
func errorKind(_ body: () throws -> Void) -> String? {
    do { try body(); return nil } catch let e as SafetensorsError { return e.kind } catch { return "\(type(of: error))" }
}
