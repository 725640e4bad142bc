import ArgumentParser
import Checkpoints
import Foundation

/// `nopekit inspect`: what a checkpoint holds, from its headers alone.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a checkpoint's architecture, tensors, dtypes and per-layer position encoding.",
        discussion: "PATH is a Hugging Face folder (model.safetensors or shards with model.safetensors.index.json, plus config.json), a .safetensors file, or a .gguf file (the first part of a split model), whose metadata is listed too. Only headers are read.")

    @Argument(help: "Checkpoint folder, .safetensors file or .gguf file.")
    var path: String

    @Flag(name: .long, help: "List every tensor (name, type, shape, bytes, file).")
    var tensors = false

    @OptionGroup var model: ModelOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        let checkpoint = try Checkpoint.open(path, position: try model.positionSpec)
        let summary = CheckpointSummary(checkpoint)
        if output.json {
            Terminal.output(JSONWriter.pretty(summary.json(withTensors: tensors), sortKeys: false))
            return
        }
        Terminal.output(Self.render(summary, withTensors: tensors))
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
