import Checkpoints
import FuzzSupport

/// A .safetensors file: the header's JSON, dtypes, shapes and offsets against the file's size.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    FuzzInput.withFile(FuzzInput.bytes(start, count), named: "model.safetensors") { path in
        let file = try SafetensorsFile(path: path)
        _ = file.header.metadata
        try FuzzInput.exercise(file)
    }
    return 0
}
