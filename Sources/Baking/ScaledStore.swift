import Checkpoints

/// A checkpoint as the bake would write it, read through `TensorStore`: the plan's tensors come
/// out scaled (one tensor materialised at a time, when read), its dropped scale vectors are
/// gone, and every other tensor is the source's. `Baker` writes it in the source's own layout
/// (`output(_:)`); `nopekit bake --format` hands it to the converter, so a bake into another
/// format reuses the converter's names, Q/K permutation and quantisers instead of a second copy
/// of them.
public final class ScaledStore: TensorStore {
    public let plan: BakePlan
    public let tensors: [TensorInfo]
    private let base: any TensorStore
    private let index: [String: TensorInfo]
    private let scaled: [String: ScaledTensor]

    public init(_ plan: BakePlan) {
        self.plan = plan
        base = plan.checkpoint.store
        let dropped = Set(plan.dropped.map(\.name))
        tensors = base.tensors.filter { !dropped.contains($0.name) }
        index = Dictionary(tensors.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var scaled: [String: ScaledTensor] = [:]
        for edit in plan.edits where edit.rowsChanged > 0 { scaled[edit.info.name] = ScaledTensor(edit, from: base) }
        self.scaled = scaled
    }

    public var sourcePath: String { base.sourcePath }

    /// False: a scaled tensor's bytes are not the ones at its source offset, so writers must
    /// read every tensor through `withRawBytes`.
    public var mapsFiles: Bool { false }

    public func lookup(_ name: String) -> TensorInfo? { index[name] }

    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let tensor = scaled[name] else {
            guard index[name] != nil else { throw TensorStoreError.tensorNotFound(name: name, source: sourcePath) }
            return try base.withRawBytes(name, body)
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(tensor.edit.info.byteCount)
        try tensor.write { bytes.append(contentsOf: $0) }
        return try bytes.withUnsafeBytes(body)
    }

    /// `info` (a tensor of the source) as a writer of the source's own layout takes it: a
    /// scaled tensor streamed in row chunks, any other a copy of its bytes that the kernel
    /// makes from the source file where it can.
    public func output(_ info: TensorInfo) -> OutputTensor {
        scaled[info.name]?.output ?? .copy(info, from: base)
    }

    public func releasePages(_ name: String, range: Range<Int>) {
        if scaled[name] == nil { base.releasePages(name, range: range) }
    }

    /// What scaling did to each planned tensor (rounding, requantised rows), once read.
    public var scaledReports: [BakeReport.Scaled] {
        plan.edits.map { BakeReport.Scaled(edit: $0, report: scaled[$0.info.name]?.report ?? RowScaling.Report.none, requantized: scaled[$0.info.name]?.requantized) }
    }
}
