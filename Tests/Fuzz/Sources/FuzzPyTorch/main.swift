import Checkpoints
import FuzzSupport

/// A PyTorch .bin: the zip archive (or legacy tar-less format), the restricted unpickler and
/// the tensor views it builds over the storages.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPyTorch(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    FuzzInput.withFile(FuzzInput.bytes(start, count), named: "pytorch_model.bin") { path in
        try FuzzInput.exercise(try PyTorchFile(path: path))
    }
    return 0
}
