import ArgumentParser
import Checkpoints
import Engine
import Foundation
import Tokenizers
import Verification

/// Options shared by `verify` and `extend`: what to measure.
struct VerifyOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Context lengths to measure, e.g. 512,1024,2048 (default: 1× and 2× the training length, then 4× it, or for extend the target and twice the target).", valueName: "lengths"))
    var lengths: String?

    @Option(name: .customLong("perplexity-protocol"), help: "sliding (the paper's: stride 256, only each window's last 256 tokens scored), chunks (llama.cpp's: BOS first, second half scored) or both.")
    var perplexityProtocol: String = "both"

    @Option(name: .long, help: "Stride (and scored tokens per window) of the sliding protocol.")
    var stride: Int = 256

    @Option(name: .customLong("max-tokens"), help: "Scored tokens per length and protocol (whole windows).")
    var maxTokens: Int = 16384

    @Flag(inversion: .prefixedNo, help: "Run the passkey retrieval grid (lengths × 10 depths × trials, greedy decoding).")
    var passkey = true

    @Option(name: .customLong("passkey-trials"), help: "Prompts per length and depth.")
    var passkeyTrials: Int = 5

    @Option(name: .customLong("passkey-prompt"), help: "A passkey template (JSON: task, filler, needle, question, answer_prefix); default: the model folder's passkey_prompt.json, else the paper's wording.")
    var passkeyPrompt: String?

    @Flag(inversion: .prefixedNo, help: "Measure each head's mean attention entropy at every length.")
    var entropy = true

    @Option(name: .long, help: "Seed of the passkey keys, depths and fillers.")
    var seed: UInt64 = 42

    func validate() throws {
        if let lengths { _ = try parsedLengths(lengths) }
        guard ["sliding", "chunks", "both"].contains(perplexityProtocol) else { throw ValidationError("--perplexity-protocol must be sliding, chunks or both") }
        guard stride >= 1, maxTokens >= 1, passkeyTrials >= 1 else { throw ValidationError("--stride, --max-tokens and --passkey-trials must be at least 1") }
    }

    func parsedLengths(_ text: String) throws -> [Int] {
        let list = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !list.isEmpty, list.allSatisfy({ ($0 ?? 0) >= 16 }) else { throw ValidationError("--lengths takes lengths ≥ 16 like 512,1024,2048") }
        return list.map { $0! }
    }

    /// The plan for a model trained at `training` (nil if unknown), defaulting the lengths.
    func plan(training: Int?, target: Int? = nil) throws -> VerificationPlan {
        var list: [Int]
        if let lengths { list = try parsedLengths(lengths) } else {
            guard let training else { throw ValidationError("the config states no training length; give --lengths") }
            list = [training, 2 * training] + (target.map { [$0, 2 * $0] } ?? [4 * training])
        }
        list = Array(Set(list)).sorted()
        var plan = VerificationPlan(lengths: list, trainingLength: training)
        plan.protocols = perplexityProtocol == "both" ? PerplexityProtocol.allCases : [PerplexityProtocol(rawValue: perplexityProtocol)!]
        plan.stride = stride
        plan.maxTokens = maxTokens
        plan.passkey = passkey ? PasskeyGrid(lengths: list, trials: passkeyTrials, seed: seed) : nil
        plan.entropyWindows = entropy ? 4 : nil
        return plan
    }
}

/// `nopekit verify`: does the patched model work at the new lengths?
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a model at several lengths: perplexity, passkey retrieval, attention entropy; with --baseline and --temps, also check that a baked model equals its source run with the temperatures.",
        discussion: """
            With --baseline SOURCE --temps T, MODEL is the patched checkpoint: its logits are \
            compared with SOURCE's run with T at run time (max difference, KL, top-token \
            agreement; it fails past a tolerance set by the stored type), and the table puts \
            SOURCE and MODEL side by side. With --temps alone, MODEL is measured without and \
            with T applied at run time.
            """)

    @Argument(help: "The model to verify: folder, .safetensors or .gguf.")
    var model: String

    @Option(name: .long, help: "The unpatched source model, measured beside MODEL.")
    var baseline: String?

    @Option(name: .long, help: "The temperature table (*.temps.json) the patched model was baked with.")
    var temps: String?

    @Option(name: .long, help: "Evaluation data: UTF-8 text, JSONL with a \"text\" field, or a token file.")
    var data: String

    @Option(name: .customLong("training-length"), help: "The length the model was trained at (default: config max_position_embeddings).")
    var trainingLength: Int?

    @Option(name: .long, help: "Write report.html (plots inline), verify.json, CSV files and SVG plots into this new folder.")
    var report: String?

    @OptionGroup var verify: VerifyOptions
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var compute: ComputeOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if baseline != nil && temps == nil { throw ValidationError("--baseline needs --temps (the table the model was baked with)") }
        if let report, FileManager.default.fileExists(atPath: report) { throw ValidationError("\(report) exists; choose another --report folder") }
    }

    func run() throws {
        let position = try modelOptions.positionSpec
        let patched = try OpenedModel(model, position: position, threads: compute.threads)
        let table = try temps.map { path -> TemperatureTable in
            let t = try TemperatureTable.load(path)
            try t.check(against: patched.config, file: path)
            return t
        }
        let plan = try verify.plan(training: trainingLength ?? patched.config.maxPositionEmbeddings ?? table?.trainingLength)
        let (template, templateSource) = try PasskeyTemplate.resolve(explicit: verify.passkeyPrompt, modelFolder: patched.companionFolder)
        let (stream, _) = try TokenStream.read(data, tokenizer: patched.tokenizer)
        var verifier = try Verifier(plan: plan, stream: stream, bos: patched.bos, tokenizer: patched.tokenizer, template: template)
        verifier.collective = Job.collective

        var subjects: [Subject] = []
        var equivalence: EquivalenceResult? = nil
        if let baseline, let table {
            let source = try OpenedModel(baseline, position: position, threads: compute.threads)
            Terminal.info("checking that \(model) equals \(baseline) with \(temps!) at run time")
            let sequences = Equivalence.sequences(stream, length: plan.lengths.min()!, bos: patched.bos)
            let e = try Equivalence.compare(patched: patched.model, baseline: source.model, temperatures: table.scales,
                                            sequences: sequences, storedType: patched.scaledTensorType)
            equivalence = e
            Terminal.info(e.summary)
            subjects = [Subject(label: "baseline", source: baseline, model: source.model),
                        Subject(label: "patched", source: model, model: patched.model)]
        } else if let table {
            subjects = [Subject(label: "baseline", source: model, model: patched.model),
                        Subject(label: "runtime scales", source: "\(model) + \(temps!)", model: patched.model, temperatures: table.scales)]
        } else {
            subjects = [Subject(label: "model", source: model, model: patched.model)]
        }
        var results: [Measurements] = []
        for s in subjects { results.append(try verifier.measure(s) { Terminal.info($0) }) }
        let report = VerificationReport(plan: plan, subjects: results, equivalence: equivalence, table: table,
                                        data: data, passkeyTemplate: templateSource)
        // every rank holds the same report; rank 0 writes and prints it
        if Job.isLeader { try VerifyPrinter.finish(report, reportFolder: self.report, json: output.json) }
        if let e = equivalence, !e.passed { throw VerificationError.notEquivalent(e.summary) }
    }
}

/// Printing a report: the terminal table or JSON, and the report folder.
enum VerifyPrinter {
    static func finish(_ report: VerificationReport, reportFolder: String?, json: Bool) throws {
        if let reportFolder {
            try ReportWriter.write(report, to: reportFolder)
            Terminal.info("report: \((reportFolder as NSString).appendingPathComponent("report.html"))")
        }
        if json { Terminal.output(JSONWriter.pretty(report.json, sortKeys: false)); return }
        let t = report.terminalTable
        var text = "models: " + report.subjects.map { "\($0.label) = \($0.source)" }.joined(separator: ", then ") + "\n"
        text += Terminal.table(t.rows, header: t.header, rightAligned: Set(0..<t.header.count))
        for note in report.notes { text += "\nnote: \(note)" }
        Terminal.output(text)
    }
}
