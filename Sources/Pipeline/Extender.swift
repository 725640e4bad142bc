import Baking
import Checkpoints
import Engine
import Foundation
import Pretraining
import TemperatureSearch
import Tokenizers
import Verification

/// The main job in one call: search the temperatures at the target length, bake them into a
/// copy of the checkpoint in its own format, and verify the copy against the source.
///
///     OUT/scales.temps.json    the table
///     OUT/<model>              the patched checkpoint (folder, .safetensors or .gguf, like the source)
///     OUT/report/              report.html, verify.json, CSV files, SVG plots
///     OUT/data/                the generated calibration and evaluation text (bundled model only)
///
/// OUT is assembled under a temporary name and appears only when every stage succeeded.
public struct ExtendRequest {
    /// nil: the bundled NoPE organism, with its own synthetic data.
    public var model: String?
    public var position: PositionSpec?
    public var targetLength: Int?
    public var trainingLength: Int?
    public var method: Search.Method = .headscale
    public var schedule: HeadScaleSearch.Settings = .paper
    public var scheduleName = "paper"
    /// Calibration data (text, JSONL or tokens); required unless the model is the bundled one.
    public var data: String?
    /// Evaluation data; default: the held-out tail of `data`.
    public var evalData: String?
    public var layers = "nope"
    /// A passkey template file; default: the model folder's own, else the paper's.
    public var passkeyPrompt: String?
    public var out: String
    public var threads = 2

    public init(model: String?, out: String) {
        self.model = model
        self.out = out
    }
}

public struct ExtendResult {
    public var model: String
    public var patched: String
    public var tablePath: String
    public var reportFolder: String
    public var table: TemperatureTable
    public var bake: BakeReport
    public var report: VerificationReport
    public var seconds: (search: Double, bake: Double, verify: Double)
}

public enum ExtendError: Error, CustomStringConvertible {
    case noBundledModel
    case needsData(String)
    case failedEquivalence(String)

    public var description: String {
        switch self {
        case .noBundledModel:
            return "no MODEL given and the bundled model (fixtures/organism) was not found beside the executable or the working directory; give a MODEL or set NOPEKIT_BUNDLED_MODEL"
        case .needsData(let model): return "\(model): give --data FILE (text, JSONL or tokens) to calibrate the search on"
        case .failedEquivalence(let line): return "the baked model does not equal the source with the temperatures at run time: \(line)"
        }
    }
}

public enum Extender {
    /// Where the bundled organism is: $NOPEKIT_BUNDLED_MODEL, else `fixtures/organism` in the
    /// working directory or above the executable (a build inside the repository).
    public static func bundledModel() -> String? {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["NOPEKIT_BUNDLED_MODEL"] { return env }
        let relative = "fixtures/organism"
        if fm.fileExists(atPath: relative + "/config.json") { return relative }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            let candidate = (dir.path as NSString).appendingPathComponent(relative)
            if fm.fileExists(atPath: candidate + "/config.json") { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    /// The bundled organism's data: its own corpus with seeds the training never used, one
    /// stream to calibrate on and another to evaluate on.
    static func writeBundledData(into folder: String) throws -> (calibration: String, evaluation: String) {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let calibration = (folder as NSString).appendingPathComponent("calibration.txt")
        let evaluation = (folder as NSString).appendingPathComponent("evaluation.txt")
        try Data(Corpus.generate(seed: 2718, size: 1_000_000, maxDocument: 512).utf8).write(to: URL(fileURLWithPath: calibration))
        try Data(Corpus.generate(seed: 9001, size: 1_000_000, maxDocument: 512).utf8).write(to: URL(fileURLWithPath: evaluation))
        return (calibration, evaluation)
    }

    /// The patched checkpoint's name inside OUT: `model` for a folder, else the source's file name.
    static func patchedName(_ c: Checkpoint) -> String {
        c.format == .huggingFaceFolder ? "model" : (c.path as NSString).lastPathComponent
    }

    /// Runs search → bake → verify. `plan(training, target)` gives the verification plan;
    /// `log` gets progress lines.
    public static func run(_ r: ExtendRequest, plan makePlan: (Int, Int) throws -> VerificationPlan,
                           log: (String) -> Void) throws -> ExtendResult {
        let bundled = r.model == nil
        guard let modelPath = r.model ?? bundledModel() else { throw ExtendError.noBundledModel }
        if !bundled && r.data == nil { throw ExtendError.needsData(modelPath) }
        let output = try AtomicOutput(finalPath: r.out, kind: .directory)
        let finalOut = r.out      // as the user wrote it, for the report and the messages
        func inOut(_ name: String) -> (temporary: String, final: String) {
            (output.temporaryChild(name), (finalOut as NSString).appendingPathComponent(name))
        }

        // The source, its tokenizer and the data.
        let source = try OpenedModel(modelPath, position: r.position, threads: r.threads)
        let config = source.config
        guard let training = r.trainingLength ?? config.maxPositionEmbeddings else {
            throw SearchError.badSettings("the config has no max_position_embeddings; give --training-length")
        }
        let target = r.targetLength ?? 4 * training
        var calibrationPath = r.data, evaluationPath = r.evalData
        if bundled {
            let data = try writeBundledData(into: inOut("data").temporary)
            calibrationPath = data.calibration
            evaluationPath = data.evaluation
        }
        let calibration = try CalibrationData.load(calibrationPath!, tokenizer: source.tokenizer, bos: source.bos)

        // 1. Search.
        log("1/3 search: \(r.method.rawValue) at \(target) tokens (trained at \(training)), \(r.scheduleName) schedule")
        var start = Date()
        let layers = try SearchProblem.layers(r.layers, config: config, model: modelPath)
        let problem = try SearchProblem(model: source.model, data: calibration, searchedLayers: layers,
                                        granularity: SearchProblem.defaultGranularity(config, store: source.checkpoint.store),
                                        targetLength: target, trainingLength: training)
        var request = Search.Request()
        request.method = r.method
        request.headscale = r.schedule
        request.schedule = r.scheduleName
        request.source = modelPath
        request.sourceSHA256 = try SHA256.checkpoint(files: source.checkpoint.store.tensors.map(\.file))
        let table = try Search.run(problem, request, log: log)
        let tablePath = inOut("scales.temps.json")
        try AtomicOutput.write(Array((JSONWriter.pretty(table.json, sortKeys: false) + "\n").utf8), to: tablePath.temporary)
        let searchSeconds = Date().timeIntervalSince(start)
        try Interruption.check(finalOut)

        // 2. Bake, in the source's format.
        start = Date()
        let patchedPath = inOut(patchedName(source.checkpoint))
        log("2/3 bake: \(patchedPath.final)")
        let bakePlan = try BakePlan.make(source.checkpoint, scales: .table(table, file: tablePath.final))
        let bake = try Baker.bake(bakePlan, to: patchedPath.temporary)
        let bakeSeconds = Date().timeIntervalSince(start)

        // 3. Verify the baked copy against the source with the table at run time.
        start = Date()
        log("3/3 verify")
        let patched = try OpenedModel(patchedPath.temporary, position: r.position, threads: r.threads)
        let plan = try makePlan(training, target)
        let stream: [Int] = try evaluationPath.map { try TokenStream.read($0, tokenizer: source.tokenizer).ids } ?? calibration.heldOut
        let (template, templateSource) = try PasskeyTemplate.resolve(explicit: r.passkeyPrompt, modelFolder: source.companionFolder)
        let verifier = try Verifier(plan: plan, stream: stream, bos: source.bos, tokenizer: source.tokenizer, template: template)
        let sequences = Equivalence.sequences(stream, length: training, bos: source.bos)
        let equivalence = try Equivalence.compare(patched: patched.model, baseline: source.model, temperatures: table.scales,
                                                  sequences: sequences, storedType: patched.scaledTensorType)
        log(equivalence.summary)
        guard equivalence.passed else { throw ExtendError.failedEquivalence(equivalence.summary) }
        let baseline = try verifier.measure(Subject(label: "baseline", source: modelPath, model: source.model), progress: log)
        let after = try verifier.measure(Subject(label: "patched", source: patchedPath.final, model: patched.model), progress: log)
        var report = VerificationReport(plan: plan, subjects: [baseline, after], equivalence: equivalence, table: table,
                                        data: evaluationPath.map { bundled ? inOut("data/evaluation.txt").final : $0 } ?? "the held-out tail of \(calibrationPath!)",
                                        passkeyTemplate: templateSource)
        if r.scheduleName != "paper" {
            report.notes.append("searched with the \(r.scheduleName) schedule (\(r.schedule.steps) steps × \(r.schedule.batch) sequences, lr \(r.schedule.learningRate)); the paper's is 200 × 8 at lr 0.1")
        }
        let reportPath = inOut("report")
        try ReportWriter.write(report, to: reportPath.temporary)
        let verifySeconds = Date().timeIntervalSince(start)
        try output.commit()
        return ExtendResult(model: modelPath, patched: patchedPath.final, tablePath: tablePath.final, reportFolder: reportPath.final,
                            table: table, bake: bake, report: report, seconds: (searchSeconds, bakeSeconds, verifySeconds))
    }
}
