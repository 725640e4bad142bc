import ArgumentParser
import Baking
import Checkpoints
import Conversion
import Foundation

/// `nopekit bake`: write a patched checkpoint with the temperatures in the weights.
struct BakeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bake",
        abstract: "Write a copy of a checkpoint with per-head temperatures (scales s_h) baked into the query weights.",
        discussion: """
            For each layer and head of the table, the head_dim rows of q_proj (and its bias) that \
            produce head h are multiplied by s_h, so any stock runtime computes the extended model \
            with its ordinary attention. Models with a q-norm get the scale on the norm weight \
            instead (per head, or per layer when one weight is shared by all heads). Quantised GGUF \
            tensors are scaled through their blocks' scale fields, without requantising (--requantize \
            handles the rows that cannot be: MXFP4/NVFP4 with a scale not a power of two). Every other \
            tensor, metadata entry and companion file is copied byte for byte; the output records \
            the table and the source's SHA-256. --from-checkpoint-scales bakes the \
            model.layers.N.self_attn.scale_param vectors of HeadScale checkpoints (the paper's \
            released model) and drops them, so the result loads in a stock Llama loader. The output \
            appears only when complete; the source is never modified.
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case same, safetensors, gguf }

    @Argument(help: "Model folder, .safetensors or .gguf file.")
    var model: String

    @Option(name: .long, help: ArgumentHelp("Temperature table (*.temps.json) from `nopekit search`.", valueName: "table"))
    var temps: String?

    @Flag(name: .customLong("from-checkpoint-scales"), help: "Bake the checkpoint's own self_attn.scale_param vectors instead of a table.")
    var fromCheckpointScales = false

    @Option(name: .long, help: "Output: a folder (from a folder), a .safetensors file or a .gguf file; must not exist.")
    var out: String

    @Option(name: .long, help: "Output format: same (the source's layout, every other byte copied), gguf (from a Hugging Face checkpoint) or safetensors (a Hugging Face folder from a GGUF file), written as `nopekit convert` writes it.")
    var format: Format = .same

    @Option(name: .long, help: ArgumentHelp("With --format gguf: type of the 2-D weights, quantised after scaling (default: the source's float type).", valueName: "type"))
    var type: GGUFOutputType?

    @Option(name: .long, help: ArgumentHelp("With --format safetensors: float type of the weights (default: F16/BF16 when every weight is, else F32).", valueName: "dtype"))
    var dtype: Convert.TargetType?

    @Flag(name: .customLong("dry-run"), help: "Print what would change (tensors, bytes) without writing.")
    var dryRun = false

    @Flag(name: .long, help: "Requantise the rows of quantised tensors that cannot be scaled through their scale fields (MXFP4/NVFP4 with a scale that is not a power of two) instead of refusing them.")
    var requantize = false

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        guard (temps != nil) != fromCheckpointScales else {
            throw ValidationError("give either --temps TABLE or --from-checkpoint-scales")
        }
        if type != nil && format != .gguf { throw ValidationError("--type sets the weights of --format gguf output") }
        if dtype != nil && format != .safetensors { throw ValidationError("--dtype sets the weights of --format safetensors output") }
    }

    func run() throws {
        let checkpoint = try Checkpoint.open(model, position: try modelOptions.positionSpec)
        let sourceFormat = checkpoint.format == .gguf ? Format.gguf : .safetensors
        let scales: BakePlan.Scales = try temps.map { .table(try TemperatureTable.load($0), file: $0) } ?? .checkpoint
        let plan = try BakePlan.make(checkpoint, scales: scales, requantize: requantize)
        if plan.isIdentity { Terminal.note("every scale is 1: the output's tensors will equal the source's") }
        let report: BakeReport
        if format != .same && format != sourceFormat {
            let target: BakedConversion.Target = format == .gguf ? .gguf(type) : .huggingFace(dtype?.dtype)
            let done = try BakedConversion.bake(plan, as: target, to: out, dryRun: dryRun, progress: dryRun ? nil : Progress("baking").update)
            done.notes.forEach(Terminal.note)
            report = done.report
        } else if dryRun {
            report = Baker.dryRun(plan, output: out)
        } else {
            let progress = Progress("baking")
            report = try Baker.bake(plan, to: out, progress: progress.update)
            if !report.skippedFiles.isEmpty {
                Terminal.warn("not copied (subfolders and other weight files would carry the unpatched model): \(report.skippedFiles.joined(separator: ", "))")
            }
        }
        if output.json {
            Terminal.output(JSONWriter.pretty(report.json, sortKeys: false))
            return
        }
        let rows = report.changed.map { s in
            [s.name, s.type, "\(s.rowsChanged)/\(s.rows)", s.report.map { String(format: "%.2e", $0.worstRelativeError) } ?? "–"]
        }
        if !rows.isEmpty {
            Terminal.info(Terminal.table(rows, header: ["tensor", "type", "rows scaled", "worst rel. rounding"], rightAligned: [2, 3]))
        }
        let verb = dryRun ? "would write" : "wrote"
        var summary = "\(verb) \(out): \(report.tensors) tensors, \(ByteSize.format(report.bytes)); \(report.changed.count) scaled (\(ByteSize.format(report.changedBytes)))"
        if !report.dropped.isEmpty { summary += ", \(report.dropped.count) scale vectors dropped" }
        Terminal.info(summary + " [\(report.target.summary)]")
        if let worst = report.worstRelativeError { Terminal.info(String(format: "worst relative rounding of an edited value: %.3g", worst)) }
        if let worst = report.worstRequantizationError {
            Terminal.warn(String(format: "requantised %d rows (dequantised, scaled, quantised again): worst relative RMS error of a row %.3g; the other rows keep their codes", report.requantizedRows, worst))
        }
    }
}
