import ArgumentParser
import Checkpoints
import Foundation
import Pipeline
import TemperatureSearch
import Verification

/// `nopekit extend`: search → bake → verify in one command.
struct Extend: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Extend a model to --target-length: search the temperatures, bake them into a copy in the same format, and verify it against the source.",
        discussion: """
            Writes OUT/scales.temps.json, the patched checkpoint OUT/model (or the source's file \
            name for a .safetensors or .gguf file: a quantised GGUF stays quantised), and \
            OUT/report/ (report.html with plots, verify.json, CSV files). Without MODEL it runs \
            on the bundled NoPE organism at 4× its training length with its own synthetic \
            data and the fast schedule.
            """)

    @Argument(help: "Model folder, .safetensors or .gguf file (default: the bundled NoPE organism).")
    var model: String?

    @Option(name: .customLong("target-length"), help: "The length to extend the model to (default: 4× the training length).")
    var targetLength: Int?

    @Option(name: .customLong("training-length"), help: "The length the model was trained at (default: config max_position_embeddings).")
    var trainingLength: Int?

    @Option(name: .long, help: "headscale (the paper's per-head search), uniform or entropy (experimental).")
    var method: Search.Method = .headscale

    @Option(name: .long, help: "paper (200 steps × 8 sequences) or fast (50 × 2; default for the bundled model).")
    var schedule: SearchCommand.Schedule?

    @Option(name: .long, help: "Calibration data: UTF-8 text, JSONL with a \"text\" field, or a token file (required with MODEL).")
    var data: String?

    @Option(name: .customLong("eval-data"), help: "Evaluation data (default: the held-out tail of --data).")
    var evalData: String?

    @Option(name: .long, help: "Layers to search: nope (default), all, or a list such as 1,3.")
    var layers: String = "nope"

    @Option(name: .long, help: "Output folder (must not exist; default: extended-<model>-<target>).")
    var out: String?

    @Option(name: .long, help: "Output format: same (the source's, verified against it). For another format, bake OUT/scales.temps.json with `nopekit bake --format`.")
    var format: String = "same"

    @OptionGroup var verify: VerifyOptions
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var compute: ComputeOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if let targetLength, targetLength < 16 { throw ValidationError("--target-length must be at least 16") }
        if model != nil && data == nil { throw ValidationError("give --data FILE to calibrate the search on (text, JSONL or tokens)") }
        guard format == "same" else { throw ValidationError("--format: extend verifies the patched model in the source's format; for another format, run `nopekit bake MODEL --temps OUT/scales.temps.json --format gguf|safetensors` afterwards") }
        if let out, FileManager.default.fileExists(atPath: out) { throw ValidationError("\(out) exists; choose another --out") }
    }

    func run() throws {
        let name = model.map { (($0 as NSString).lastPathComponent as NSString).deletingPathExtension } ?? "organism"
        var request = ExtendRequest(model: model, out: out ?? "extended-\(name)-\(targetLength.map(String.init) ?? "4x")")
        request.position = try modelOptions.positionSpec
        request.targetLength = targetLength
        request.trainingLength = trainingLength
        request.method = method
        let chosen = schedule ?? (model == nil ? .fast : .paper)
        request.schedule = chosen == .fast ? .fast : .paper
        request.scheduleName = chosen.rawValue
        request.data = data
        request.evalData = evalData
        request.layers = layers
        request.threads = compute.threads
        request.passkeyPrompt = verify.passkeyPrompt
        if model == nil { Terminal.info("no MODEL: extending the bundled NoPE organism with the fast schedule (the paper's takes about 3 minutes more)") }
        let start = Date()
        let result = try Extender.run(request, plan: { training, target in
            try verify.plan(training: training, target: target)
        }, log: { Terminal.info($0) })
        let seconds = Date().timeIntervalSince(start)
        if output.json {
            var json = result.report.json
            if case .object(var members) = json {
                members.insert(contentsOf: [JSONMember("model", .string(result.model)), JSONMember("patched", .string(result.patched)),
                                            JSONMember("temperatures", .string(result.tablePath)),
                                            JSONMember("report", .string((result.reportFolder as NSString).appendingPathComponent("report.html"))),
                                            JSONMember("seconds", .object([JSONMember("search", .double(result.seconds.search)),
                                                                           JSONMember("bake", .double(result.seconds.bake)),
                                                                           JSONMember("verify", .double(result.seconds.verify)),
                                                                           JSONMember("total", .double(seconds))]))], at: 0)
                json = .object(members)
            }
            Terminal.output(JSONWriter.pretty(json, sortKeys: false))
            return
        }
        try VerifyPrinter.finish(result.report, reportFolder: nil, json: false)
        Terminal.info(String(format: "temperatures: %@\npatched model: %@\nreport: %@/report.html\n(search %.0f s, bake %.1f s, verify %.0f s; %.0f s in all)",
                             result.tablePath, result.patched, result.reportFolder, result.seconds.search, result.seconds.bake,
                             result.seconds.verify, seconds))
    }
}
