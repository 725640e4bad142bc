import Foundation

/// Streams one stored tensor into a writer as another type: decoded to F32 a block of rows at a
/// time, optionally with the Q/K rows permuted between HF and GGUF order, and encoded to the
/// target (F32/F16/BF16 elements or ggml blocks). The re-typing `convert`, HF → GGUF and
/// GGUF → HF all write through it.
///
/// Memory: one block of about `blockElements` F32 values plus its encoded bytes, whatever the
/// tensor's size; the source pages of each block are handed back to the kernel once encoded,
/// so converting a model keeps a flat resident set.
public enum TensorTranscoder {
    /// F32 elements per block: 1 Mi = 4 MiB of scratch.
    public static let blockElements = 1 << 20

    /// Rows of a head-ordered matrix that move within their head (`QKPermutation`).
    public struct Permutation: Sendable {
        public var direction: QKPermutation.Direction
        public var headDim: Int
        public init(_ direction: QKPermutation.Direction, headDim: Int) {
            self.direction = direction
            self.headDim = headDim
        }
    }

    /// An `OutputTensor` named `name` that reads `info` from `store` when written and stores it
    /// as `type`. Rows are the last dimension; a quantised target needs rows that are a whole
    /// number of its blocks (the caller picks a fallback type otherwise).
    public static func output(_ info: TensorInfo, from store: any TensorStore, as type: TensorType, name: String? = nil,
                              permutation: Permutation? = nil, threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws -> OutputTensor {
        let name = name ?? info.name
        if info.type == type && permutation == nil {
            var copy = OutputTensor.copy(info, from: store)
            copy.name = name
            return copy
        }
        for t in [info.type, type] { if case .plain(let d) = t, d.byteSize == nil { throw ElementConversionError.notDecodable(d) } }
        // A permuted bias moves element by element: rows of one.
        let columns = info.shape.count == 1 && permutation != nil ? 1 : info.shape.last ?? 1
        let rows = columns == 0 ? 0 : info.elementCount / columns
        guard let sourceRowBytes = info.type.rowBytes(elements: columns), let outRowBytes = type.rowBytes(elements: columns) else {
            throw TranscodeError.partialBlock(name: info.name, columns: columns, type: (info.type.rowBytes(elements: columns) == nil ? info.type : type).name)
        }
        if case .plain(let d) = type, !ElementConversion.encodableTypes.contains(d) { throw ElementConversionError.notEncodable(d) }
        if let p = permutation, rows % p.headDim != 0 {
            throw TranscodeError.notWholeHeads(name: info.name, rows: rows, headDim: p.headDim)
        }
        // Rows per block: whole heads when permuting, at least one row.
        let unit = permutation?.headDim ?? 1
        let rowsPerBlock = max(unit, blockElements / max(1, columns) / unit * unit)
        return OutputTensor(name: name, type: type, shape: info.shape, byteCount: rows * outRowBytes) { sink in
            let capacity = min(rows, rowsPerBlock) * columns
            var scratch = [Float](repeating: 0, count: capacity)
            var encoded = [UInt8](repeating: 0, count: min(rows, rowsPerBlock) * outRowBytes)
            try store.withRawBytes(info.name) { raw in
                var row = 0
                while row < rows {
                    let n = min(rowsPerBlock, rows - row)
                    let sourceRange = (row * sourceRowBytes)..<((row + n) * sourceRowBytes)
                    try scratch.withUnsafeMutableBufferPointer { f in
                        try encoded.withUnsafeMutableBytes { o in
                            // The block's rows in parts of whole units, one per core: decoding and
                            // quantising are the cost, and rows are independent.
                            let parts = n * columns >= 1 << 16 ? min(threads, n / unit) : 1
                            let unitsPerPart = (n / unit + parts - 1) / parts
                            let failure = FirstError()
                            DispatchQueue.concurrentPerform(iterations: parts) { part in
                                let first = part * unitsPerPart * unit, last = min(n, first + unitsPerPart * unit)
                                guard first < last else { return }
                                do {
                                    let values = f.baseAddress! + first * columns, count = (last - first) * columns
                                    try info.type.decode(raw.baseAddress! + sourceRange.lowerBound + first * sourceRowBytes, count: count, into: values)
                                    if let p = permutation {
                                        QKPermutation.permute(UnsafeMutableBufferPointer(start: values, count: count), rowWidth: columns, headDim: p.headDim, p.direction)
                                    }
                                    try encode(values, count: count, as: type, into: o.baseAddress! + first * outRowBytes)
                                } catch {
                                    failure.record(error)
                                }
                            }
                            try failure.rethrow()
                            try sink(UnsafeRawBufferPointer(rebasing: o[0..<(n * outRowBytes)]))
                        }
                    }
                    store.releasePages(info.name, range: sourceRange)
                    row += n
                }
            }
        }
    }

    /// F32 values → `type`: rounded to nearest even for F16/BF16, ggml's reference quantisers
    /// for blocks.
    static func encode(_ src: UnsafePointer<Float>, count: Int, as type: TensorType, into dst: UnsafeMutableRawPointer) throws {
        switch type {
        case .plain(let d): try ElementConversion.encode(src, count: count, as: d, into: dst)
        case .quantized(let q): try Quantizers.quantize(src, count: count, as: q, into: dst)
        }
    }
}

/// The first error thrown by any of several concurrent workers.
final class FirstError: @unchecked Sendable {
    private let lock = NSLock()
    private var error: (any Error)?
    func record(_ e: any Error) { lock.lock(); if error == nil { error = e }; lock.unlock() }
    func rethrow() throws { if let error { throw error } }
}

public enum TranscodeError: Error, CustomStringConvertible, Equatable {
    /// The rows of a tensor are not a whole number of the type's blocks.
    case partialBlock(name: String, columns: Int, type: String)
    /// A permuted Q/K tensor's rows are not whole heads.
    case notWholeHeads(name: String, rows: Int, headDim: Int)
    /// Packed sub-byte floats (F4, F6) asked to become another type.
    case packedType(name: String, type: String, target: String)

    public var description: String {
        switch self {
        case .partialBlock(let n, let c, let t):
            return "tensor '\(n)': rows of \(c) elements are not whole \(t) blocks; choose a type whose block divides \(c)"
        case .packedType(let n, let t, let target):
            return "tensor '\(n)' is \(t) (packed sub-byte floats), which nopekit cannot convert to \(target); convert without --dtype to copy it unchanged"
        case .notWholeHeads(let n, let r, let e):
            return "tensor '\(n)': \(r) rows are not whole heads of \(e) rows; the config's head_dim does not fit the weights"
        }
    }
}
