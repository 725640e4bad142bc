import Checkpoints
import FuzzSupport

/// A checksum record (SHA256SUMS, NAME.sha256): lines, escapes, paths.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzChecksumManifest(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = FuzzInput.bytes(start, count)
    if let manifest = try? ChecksumManifest.parse([UInt8](bytes), file: "SHA256SUMS") {
        // Every path stays inside the folder, and what nopekit writes back reads back the same.
        for e in manifest.entries {
            precondition(!e.path.hasPrefix("/") && !e.path.split(separator: "/", omittingEmptySubsequences: false).contains(".."),
                         "a record path leaves the folder")
        }
        let again = try? ChecksumManifest.parse(Array(manifest.text.utf8), file: "rewritten")
        precondition(again == manifest, "a record that loaded does not reload the same after writing")
    }
    return 0
}
