import Checkpoints

/// A tensor written with some of its rows scaled, streamed in chunks of whole rows: the source
/// bytes are copied into a scratch buffer, rows whose scale is not 1 are scaled in place
/// (`RowScaling`: elements rounded once, or quantised blocks' scale fields edited), and the
/// chunk goes to the writer. Peak memory is one chunk.
final class ScaledTensor {
    let edit: BakePlan.Edit
    let store: any TensorStore
    /// The worst rounding and the number of edited fields so far.
    private(set) var report = RowScaling.Report.none

    static let chunkBytes = 8 << 20

    init(_ edit: BakePlan.Edit, from store: any TensorStore) {
        self.edit = edit
        self.store = store
    }

    var output: OutputTensor {
        let info = edit.info
        return OutputTensor(name: info.name, type: info.type, shape: info.shape, byteCount: info.byteCount) { [self] sink in
            try write(to: sink)
        }
    }

    func write(to sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        let info = edit.info
        let type = BakePlan.ggmlType(info.type)!  // checked by the plan
        let rows = edit.rows
        let rowBytes = info.byteCount / rows
        let rowElements = info.elementCount / rows
        let rowsPerChunk = max(1, Self.chunkBytes / max(1, rowBytes))
        var scratch = [UInt8](repeating: 0, count: min(rows, rowsPerChunk) * rowBytes)
        try store.withRawBytes(info.name) { raw in
            var first = 0
            while first < rows {
                let count = min(rowsPerChunk, rows - first)
                let range = (first * rowBytes)..<((first + count) * rowBytes)
                try scratch.withUnsafeMutableBytes { buffer in
                    buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[range]))
                    for r in 0..<count where edit.rowScales[first + r] != 1 {
                        do {
                            let done = try RowScaling.scaleRow(buffer.baseAddress! + r * rowBytes, elements: rowElements,
                                                               type: type, by: edit.rowScales[first + r])
                            report = report.merged(done)
                        } catch let error as QuantError {
                            throw BakeError.cannotScale(source: store.sourcePath, tensor: info.name, reason: "row \(first + r): \(error)")
                        }
                    }
                    try sink(UnsafeRawBufferPointer(rebasing: buffer[0..<range.count]))
                }
                store.releasePages(info.name, range: range)
                first += count
            }
        }
    }
}
