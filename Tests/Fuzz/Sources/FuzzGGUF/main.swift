import Checkpoints
import FuzzSupport

/// A .gguf file: header, metadata values and arrays, tensor infos, alignment; then the model
/// configuration decoded from its metadata, as `inspect` and the engine do.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGGUF(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    FuzzInput.withFile(FuzzInput.bytes(start, count), named: "model.gguf") { path in
        let file = try GGUFFile(path: path)
        try FuzzInput.exercise(file)
        _ = try? ModelConfig.decode(gguf: file.metadata, tensors: file.tensors, file: path)
    }
    return 0
}
