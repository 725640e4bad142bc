import Checkpoints
import FuzzSupport

/// A config.json: every number, RoPE scaling, NoPE pattern and window field.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = FuzzInput.bytes(start, count)
    guard let json = try? JSONReader.parse([UInt8](bytes)) else { return 0 }
    if let config = try? ModelConfig.decode(json, file: "config.json") {
        _ = JSONWriter.pretty(config.huggingFaceJSON(dtype: .f32, padTokenID: nil))
    }
    return 0
}
