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
    /// Rows requantised (`BakePlan.Edit.requantize`) and the worst relative RMS error of one,
    /// ‖dequant(quant(λ·w)) − λ·w‖ / ‖λ·w‖.
    private(set) var requantized = Requantized()

    struct Requantized: Equatable {
        var rows = 0
        var worstRelativeRMS = 0.0
    }

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

    /// Streams the scaled tensor to `sink`. Each call starts the reports afresh, so a tensor
    /// read twice is not counted twice.
    func write(to sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        report = .none
        requantized = Requantized()
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
                        let row = buffer.baseAddress! + r * rowBytes, lambda = edit.rowScales[first + r]
                        do {
                            if edit.requantize && RowScaling.refusal(type, by: lambda) != nil {
                                try requantize(row, elements: rowElements, type: type, by: lambda)
                            } else {
                                report = report.merged(try RowScaling.scaleRow(row, elements: rowElements, type: type, by: lambda))
                            }
                        } catch let error as QuantError where edit.requantize {
                            // In place failed (a scale field would overflow): requantise instead.
                            do { try requantize(row, elements: rowElements, type: type, by: lambda) } catch let again as QuantError {
                                throw BakeError.cannotScale(source: store.sourcePath, tensor: info.name, reason: "row \(first + r): \(error); requantising: \(again)")
                            }
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

    /// Dequantises one row, multiplies it by λ in F32 and quantises it again with the row's own
    /// type (`Quantizers`, ggml's reference quantisers), recording the error this adds.
    func requantize(_ row: UnsafeMutableRawPointer, elements: Int, type: GGMLType, by lambda: Float) throws {
        var target = [Float](repeating: 0, count: elements)
        try BlockCodecs.dequantize(type, from: row, count: elements, into: &target)
        for i in target.indices { target[i] *= lambda }
        guard target.allSatisfy(\.isFinite) else { throw QuantError.cannotScale(type: type, reason: "λ·w overflows F32") }
        try target.withUnsafeBufferPointer { try Quantizers.quantize($0.baseAddress!, count: elements, as: type, into: row) }
        var back = [Float](repeating: 0, count: elements)
        try BlockCodecs.dequantize(type, from: row, count: elements, into: &back)
        var error = 0.0, norm = 0.0
        for i in 0..<elements {
            error += Double(back[i] - target[i]) * Double(back[i] - target[i])
            norm += Double(target[i]) * Double(target[i])
        }
        requantized.rows += 1
        requantized.worstRelativeRMS = max(requantized.worstRelativeRMS, norm > 0 ? (error / norm).squareRoot() : 0)
    }
}
