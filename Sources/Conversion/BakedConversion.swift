import Baking
import Checkpoints
import Foundation

/// `nopekit bake --format`: a baked checkpoint written in the other format in one pass. The
/// bake's `ScaledStore` presents the source with its q rows scaled; the converter's own plan
/// (`GGUFExport` or `HuggingFaceExport`: names, Q/K permutation, types, tokenizer, config)
/// writes it, and the bake's provenance is added (the table and the source's SHA-256, computed
/// on a second thread while the tensors are written).
///
/// Scaling happens before any re-typing, in the source's stored type, so a Hugging Face model
/// baked to a quantised GGUF is quantised from the scaled weights (no block-field edits).
public enum BakedConversion {
    public enum Target: Equatable {
        /// A GGUF file from a Hugging Face checkpoint, weights in `type` (nil: the source's).
        case gguf(GGUFOutputType?)
        /// A Hugging Face folder from a GGUF file, floats in `dtype` (nil: the converter's default).
        case huggingFace(DType?)
    }

    public static func bake(_ plan: BakePlan, as target: Target, to output: String, maxShardBytes: Int? = nil,
                            dryRun: Bool = false, progress: ((Int, Int) -> Void)? = nil) throws -> (report: BakeReport, notes: [String]) {
        let checkpoint = plan.checkpoint
        try Baker.checkOutsideInput(output, for: checkpoint)
        let view = ScaledStore(plan)
        let sourceFiles = Array(Set(checkpoint.store.tensors.map(\.file)))
        switch target {
        case .gguf(let type):
            guard checkpoint.format != .gguf else { throw BakeError.formatChange(source: checkpoint.path, requested: "gguf") }
            guard output.hasSuffix(".gguf") else { throw BakeError.unsupportedOutput(output: output, detail: "--format gguf writes a .gguf file") }
            let export = try GGUFExport.plan(checkpoint, type: type, tensors: view)
            var written = false
            var checksum: String?
            if !dryRun {
                let background = BackgroundChecksum(files: sourceFiles)
                defer { background.finish() }
                var metadata = export.metadata
                metadata.append(GGUFKeyValue(Provenance.ggufTemperaturesKey, .string(plan.table.compactJSON)))
                metadata.append(GGUFKeyValue(Provenance.ggufSourceKey, .string(background.valueOrPlaceholder)))
                _ = try GGUFWriter.write(metadata: metadata, tensors: export.tensors, to: output, maxShardBytes: maxShardBytes,
                                         late: background.late { [GGUFKeyValue(Provenance.ggufSourceKey, .string($0))] },
                                         progress: progress)
                checksum = try background.wait()
                written = true
            }
            return (report(plan, view: view, output: output, format: "gguf", tensors: export.tensors, checksum: checksum,
                           files: [], written: written), export.notes)
        case .huggingFace(let dtype):
            guard checkpoint.format == .gguf else { throw BakeError.formatChange(source: checkpoint.path, requested: "safetensors") }
            guard !output.hasSuffix(".gguf"), !output.hasSuffix(".safetensors") else {
                throw BakeError.unsupportedOutput(output: output, detail: "--format safetensors writes a Hugging Face folder (config.json, tokenizer, shards); give a folder path")
            }
            let export = try HuggingFaceExport.plan(checkpoint, dtype: dtype, tensors: view)
            var written = false
            var checksum: String?
            if !dryRun {
                let background = BackgroundChecksum(files: sourceFiles)
                defer { background.finish() }
                let metadata = ["format": "pt", Provenance.temperaturesKey: plan.table.compactJSON, Provenance.sourceKey: background.valueOrPlaceholder]
                try SafetensorsWriter.writeFolder(
                    export.tensors, metadata: metadata, late: background.late { [Provenance.sourceKey: $0] }, to: output,
                    maxShardBytes: maxShardBytes,
                    extraFiles: {
                        try export.files.map { file in
                            file.name == "config.json"
                                ? (file.name, try Baker.configWithProvenance(file.contents, file: output + "/config.json", table: plan.table, checksum: try background.wait()))
                                : file
                        }
                    },
                    progress: progress)
                checksum = try background.wait()
                written = true
            }
            return (report(plan, view: view, output: output, format: "safetensors", tensors: export.tensors, checksum: checksum,
                           files: export.files.map(\.name), written: written), export.notes)
        }
    }

    static func report(_ plan: BakePlan, view: ScaledStore, output: String, format: String, tensors: [OutputTensor],
                       checksum: String?, files: [String], written: Bool) -> BakeReport {
        var report = written
            ? BakeReport(plan: plan, output: output, scaled: view.scaledReports, sourceSHA256: checksum, copiedFiles: files,
                         skippedFiles: [], written: true, format: format)
            : Baker.dryRun(plan, output: output)
        report.format = format
        report.tensors = tensors.count
        report.bytes = tensors.reduce(0) { $0 + $1.byteCount }
        return report
    }
}
