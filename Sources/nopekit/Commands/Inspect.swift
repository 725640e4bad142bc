import ArgumentParser
import Checkpoints
import Foundation

/// `nopekit inspect`: what a checkpoint holds, from its headers alone.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a checkpoint's architecture, tensors, dtypes and per-layer position encoding.",
        discussion: """
            PATH is a Hugging Face folder (model.safetensors or shards with model.safetensors.index.json, plus config.json), a .safetensors file, or a .gguf file (the first part of a split model), whose metadata is listed too. Only headers are read.

            With --verify, every byte is read instead: the files are re-hashed against the checksums nopekit recorded when it wrote them (SHA256SUMS in a folder, NAME.sha256 beside a file; `sha256sum -c` reads both), and every floating-point tensor is scanned for NaN and ±Inf, which are reported by tensor name. The command fails if any file differs from its record or any tensor holds such a value.
            """)

    @Argument(help: "Checkpoint folder, .safetensors file or .gguf file.")
    var path: String

    @Flag(name: .long, help: "List every tensor (name, type, shape, bytes, file).")
    var tensors = false

    @Flag(name: .long, help: "Re-hash the files against their recorded checksums and scan every tensor for NaN/Inf.")
    var verify = false

    @OptionGroup var model: ModelOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if verify && tensors { throw ValidationError("--verify and --tensors are separate reports; give one") }
    }

    func run() throws {
        if verify { return try runVerify() }
        let checkpoint = try Checkpoint.open(path, position: try model.positionSpec)
        let summary = CheckpointSummary(checkpoint)
        if output.json {
            Terminal.output(JSONWriter.pretty(summary.json(withTensors: tensors), sortKeys: false))
            return
        }
        Terminal.output(Self.render(summary, withTensors: tensors))
    }

    func runVerify() throws {
        let report = try IntegrityCheck.run(path) { line in Terminal.info(line) }
        Terminal.output(output.json ? JSONWriter.pretty(report.json, sortKeys: false) : Self.render(report))
        if report.problemCount > 0 { throw IntegrityFailure(report) }
    }

    static func render(_ r: IntegrityCheck.Report) -> String {
        var lines: [String] = []
        if let manifest = r.manifest {
            let bad = r.checks.filter { $0.status != .ok }
            lines.append("checksums: \(r.checks.count - bad.count) of \(r.checks.count) files match \(manifest)")
            for c in bad {
                let what: String
                switch c.status {
                case .ok: continue
                case .mismatch(let actual): what = "differs from its record (recorded \(c.entry.sha256.prefix(16))…, now \(actual.prefix(16))…)"
                case .missing: what = "is missing"
                case .unreadable(let reason): what = "cannot be read: \(reason)"
                }
                lines.append("  \(Terminal.printable(c.entry.path)) \(what)")
            }
            if !r.unlisted.isEmpty {
                lines.append("  not in the record (added later?): " + r.unlisted.map(Terminal.printable).joined(separator: ", "))
            }
        } else {
            lines.append("checksums: none recorded (nopekit writes SHA256SUMS or NAME.sha256 with every model it writes); values scanned only")
        }
        if let scanned = r.scanned {
            lines.append("values: \(grouped(scanned.elements)) in \(scanned.tensors) tensors, " + (r.nonFinite.isEmpty ? "all finite" : "\(r.nonFinite.count) tensors hold NaN or ±Inf:"))
            for t in r.nonFinite {
                lines.append("  \(Terminal.printable(t.tensor)): \(grouped(t.count)) non-finite value\(t.count == 1 ? "" : "s"), the first at flat index \(grouped(t.firstIndex))")
            }
        } else {
            lines.append("values: not scanned (\(r.notScanned ?? "not a checkpoint"))")
        }
        return lines.joined(separator: "\n")
    }

    static func render(_ s: CheckpointSummary, withTensors: Bool) -> String {
        var lines: [String] = []
        func row(_ key: String, _ value: String) { lines.append(key.padding(toLength: 14, withPad: " ", startingAt: 0) + value) }
        row("checkpoint", "\(s.path) (\(s.format), \(s.files.count) file\(s.files.count == 1 ? "" : "s"))")
        if let c = s.config {
            let gqa = c.heads == c.kvHeads ? "MHA" : "GQA \(c.heads / c.kvHeads):1"
            row("architecture", "\(c.modelType): \(c.layers) layers, hidden \(c.hidden), \(c.heads) heads × \(c.headDim) (\(c.kvHeads) KV heads, \(gqa)), MLP \(c.intermediate), vocab \(c.vocab)")
            var extras: [String] = []
            if c.tiedEmbeddings { extras.append("tied embeddings") }
            if c.attentionBias { extras.append("attention biases") }
            if c.mlpBias { extras.append("MLP biases") }
            if c.qkNorm { extras.append("q/k norm") }
            extras.append("norm eps \(c.normEps)")
            if let m = c.maxPositionEmbeddings { extras.append("max positions \(m)") }
            row("", extras.joined(separator: ", "))
            var rope = "θ \(c.rope.theta)"
            if let t = c.rope.scalingType { rope += ", \(t) scaling" + (c.rope.factor.map { " ×\($0)" } ?? "") }
            if c.rope.partialRotaryFactor != 1 { rope += ", rotary fraction \(c.rope.partialRotaryFactor)" }
            row("positions", "\(PositionSpec.describe(c.positions)): \(c.nopeLayerCount) of \(c.layers) layers NoPE; from \(c.positionSource)")
            row("", c.positions.map { $0 == .none ? "N" : "R" }.joined() + "  (layer 0 first; N = NoPE, R = RoPE \(rope))")
            if let target = s.bakeTarget { row("bakeable", target.summary) }
        } else {
            row("architecture", "unknown: \(s.configProblem ?? "no config")")
        }
        row("parameters", "\(grouped(s.parameters)) (\(s.tensorCount) tensors)")
        row("dtypes", s.dtypes.map { "\($0.type.name) ×\($0.tensors) (\(ByteSize.format($0.bytes)))" }.joined(separator: ", "))
        row("bits/weight", String(format: "%.3f", s.bitsPerWeight))
        row("size", "\(ByteSize.format(s.tensorBytes)) of tensors in \(ByteSize.format(s.fileBytes)) of files")
        if s.files.count > 1 {
            for f in s.files { row("", "\(f.name): \(f.tensors) tensors, \(ByteSize.format(f.bytes))") }
        }
        if let g = s.gguf {
            lines.append("")
            lines.append("GGUF v\(g.version), alignment \(g.alignment), \(g.metadata.count) metadata entries:")
            let rows = g.metadata.enumerated().map { i, kv in
                [String(i + 1), kv.value.type.description, Terminal.printable(kv.key), kv.value.summary()]
            }
            lines.append(Terminal.table(rows, header: ["#", "type", "key", "value"], rightAligned: [0]))
        }
        if withTensors {
            lines.append("")
            let rows = s.tensors.map { t in
                [Terminal.printable(t.name), t.type.name, "[" + t.shape.map(String.init).joined(separator: ", ") + "]", grouped(t.byteCount), (t.file as NSString).lastPathComponent]
            }
            lines.append(Terminal.table(rows, header: ["name", "type", "shape", "bytes", "file"], rightAligned: [3]))
        }
        return lines.joined(separator: "\n")
    }

    static func grouped(_ n: Int) -> String {
        let digits = Array(String(n))
        var out = ""
        for (i, d) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
            out.append(d)
        }
        return out
    }
}

/// `inspect --verify` found something wrong (already listed above the message).
struct IntegrityFailure: Error, CustomStringConvertible {
    var path: String
    var files: Int
    var tensors: Int

    init(_ r: IntegrityCheck.Report) {
        path = r.path
        files = r.checks.filter { $0.status != .ok }.count
        tensors = r.nonFinite.count
    }

    var description: String {
        var parts: [String] = []
        if files > 0 {
            parts.append("\(files) file\(files == 1 ? " differs" : "s differ") from the checksums recorded when nopekit wrote \(files == 1 ? "it" : "them"): changed or damaged since; copy or download again, or write the output again")
        }
        if tensors > 0 {
            parts.append("\(tensors) tensor\(tensors == 1 ? " holds" : "s hold") NaN or ±Inf, which make every output NaN: the checkpoint is damaged or came from a diverged run")
        }
        return "\(path): " + parts.joined(separator: "; ") + " (listed above)"
    }
}
