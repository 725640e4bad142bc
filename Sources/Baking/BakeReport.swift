import Checkpoints

/// What a bake did (or, for `--dry-run`, would do): for `nopekit bake`'s table and `--json`.
public struct BakeReport {
    public struct Scaled {
        public var name: String
        public var type: String
        public var rows: Int
        public var rowsChanged: Int
        public var bytes: Int
        /// Fields or elements edited and the worst rounding (nil before writing).
        public var report: RowScaling.Report?
        /// Rows dequantised, scaled and quantised again (`--requantize`), and the worst
        /// relative RMS error that added to one of them.
        public var requantizedRows = 0
        public var requantizationError: Double?

        init(edit: BakePlan.Edit, report: RowScaling.Report?, requantized: ScaledTensor.Requantized? = nil) {
            name = edit.info.name
            type = edit.info.type.name
            rows = edit.rows
            rowsChanged = edit.rowsChanged
            bytes = edit.info.byteCount
            self.report = report
            if let requantized, requantized.rows > 0 {
                requantizedRows = requantized.rows
                requantizationError = requantized.worstRelativeRMS
            }
        }
    }

    public var source: String
    public var output: String
    public var format: String
    public var method: String
    public var target: BakeTarget
    public var scaled: [Scaled]
    public var dropped: [String]
    public var tensors: Int
    public var bytes: Int
    public var sourceSHA256: String?
    public var copiedFiles: [String]
    public var skippedFiles: [String]
    public var written: Bool

    /// - Parameter format: the output's format when it differs from the source's.
    public init(plan: BakePlan, output: String, scaled: [Scaled], sourceSHA256: String?, copiedFiles: [String],
                skippedFiles: [String], written: Bool, format: String? = nil) {
        source = plan.sourcePath
        self.output = output
        self.format = format ?? plan.checkpoint.format.rawValue
        method = plan.table.method
        target = plan.target
        self.scaled = scaled
        dropped = plan.dropped.map(\.name)
        let dropSet = Set(dropped)
        let kept = plan.checkpoint.store.tensors.filter { !dropSet.contains($0.name) }
        tensors = kept.count
        bytes = kept.reduce(0) { $0 + $1.byteCount }
        self.sourceSHA256 = sourceSHA256
        self.copiedFiles = copiedFiles
        self.skippedFiles = skippedFiles
        self.written = written
    }

    /// Tensors whose bytes change.
    public var changed: [Scaled] { scaled.filter { $0.rowsChanged > 0 } }
    public var changedBytes: Int { changed.reduce(0) { $0 + $1.bytes } }
    /// Rows requantised in all (`--requantize`), and the worst relative RMS error of one.
    public var requantizedRows: Int { changed.reduce(0) { $0 + $1.requantizedRows } }
    public var worstRequantizationError: Double? { changed.compactMap(\.requantizationError).max() }

    /// The largest relative rounding of any edited field or element.
    public var worstRelativeError: Double? {
        let values = changed.compactMap { $0.report?.worstRelativeError }
        return values.isEmpty ? nil : values.max()
    }

    public var json: JSONValue {
        .object([
            JSONMember("source", .string(source)),
            JSONMember("output", .string(output)),
            JSONMember("written", .bool(written)),
            JSONMember("format", .string(format)),
            JSONMember("method", .string(method)),
            JSONMember("target", .string(target.name)),
            JSONMember("tensors", .int(tensors)),
            JSONMember("bytes", .int(bytes)),
            JSONMember("tensors_changed", .int(changed.count)),
            JSONMember("bytes_changed", .int(changedBytes)),
            JSONMember("worst_relative_error", worstRelativeError.map { .double($0) } ?? .null),
            JSONMember("rows_requantized", .int(requantizedRows)),
            JSONMember("worst_requantization_relative_rms", worstRequantizationError.map { .double($0) } ?? .null),
            JSONMember("scaled", .array(changed.map { s in
                .object([
                    JSONMember("name", .string(s.name)), JSONMember("type", .string(s.type)),
                    JSONMember("rows", .int(s.rows)), JSONMember("rows_scaled", .int(s.rowsChanged)),
                    JSONMember("bytes", .int(s.bytes)),
                    JSONMember("edits", s.report.map { .int($0.edits) } ?? .null),
                    JSONMember("worst_relative_error", s.report.map { .double($0.worstRelativeError) } ?? .null),
                    JSONMember("rows_requantized", .int(s.requantizedRows)),
                    JSONMember("requantization_relative_rms", s.requantizationError.map { .double($0) } ?? .null),
                ])
            })),
            JSONMember("dropped", .array(dropped.map { .string($0) })),
            JSONMember("source_sha256", sourceSHA256.map { .string($0) } ?? .null),
            JSONMember("copied_files", .array(copiedFiles.map { .string($0) })),
            JSONMember("skipped_files", .array(skippedFiles.map { .string($0) })),
        ])
    }
}
