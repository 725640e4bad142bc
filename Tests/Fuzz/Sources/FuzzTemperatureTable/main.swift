import Checkpoints
import FuzzSupport

/// A .temps.json table: shape, rows, scale values, search record.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTemperatureTable(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = FuzzInput.bytes(start, count)
    guard let json = try? JSONReader.parse([UInt8](bytes)) else { return 0 }
    if let table = try? TemperatureTable.decode(json, file: "table.temps.json") {
        _ = table.scale(layer: 0, head: 0)
        // What nopekit writes back must read back.
        let written = JSONWriter.pretty(table.json)
        precondition((try? TemperatureTable.decode(JSONReader.parse(written), file: "rewritten")) != nil, "a table that loaded does not reload after writing")
    }
    return 0
}
