import ArgumentParser
import Checkpoints
import Conversion
import Foundation

/// `nopekit convert`: between Hugging Face folders (safetensors or PyTorch `.bin`) and llama.cpp
/// GGUF, or re-typing and re-sharding within a format, streaming tensor by tensor.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a checkpoint between Hugging Face folders and GGUF, or re-type and re-shard it.",
        discussion: """
            The direction follows IN and OUT. A Hugging Face folder (safetensors or \
            pytorch_model.bin, with config.json) to OUT.gguf writes what stock llama.cpp loads: \
            its tensor names, Q/K rows permuted as its converter does, norms and biases F32, \
            weights in --type, the tokenizer as tokenizer.ggml.* and nopekit.position. NoPE \
            survives only where llama.cpp can run it: all-NoPE is written as granite with RoPE \
            switched off, RoPE-except-every-4th-layer as smollm3, all-RoPE as llama; other \
            patterns are refused. A .gguf IN to a folder OUT writes HF names, un-permuted Q/K, \
            dequantised weights in --dtype, and config.json and tokenizer.json rebuilt from the \
            metadata. Folder to folder (or .safetensors) re-types floats with --dtype; GGUF to \
            GGUF copies every tensor and metadata entry, merged or split anew by \
            --max-shard-size. The output appears only when complete; IN is never modified and \
            an existing OUT is never overwritten.
            """)

    enum TargetType: String, ExpressibleByArgument, CaseIterable {
        case f32, f16, bf16
        var dtype: DType { switch self { case .f32: .f32; case .f16: .f16; case .bf16: .bf16 } }
    }

    @Argument(help: "Source checkpoint: a Hugging Face folder, a .safetensors, .bin or .gguf file.")
    var input: String

    @Argument(help: "Destination (.gguf, .safetensors or folder); must not exist.")
    var output: String

    @Option(name: .long, help: ArgumentHelp("Type of the 2-D weights of a GGUF written from a Hugging Face checkpoint (default: the source's float type); rows that are not whole blocks fall back as llama-quantize does.", valueName: "type"))
    var type: GGUFOutputType?

    @Option(name: .long, help: "Float type of safetensors output: f32, f16 or bf16 (default: keep each tensor's type; F32 for dequantised GGUF blocks).")
    var dtype: TargetType?

    @Option(name: .long, help: ArgumentHelp("Largest shard (tensor bytes), e.g. 2G, 500MB, 4GiB; folder or .gguf output.", valueName: "size"))
    var maxShardSize: String?

    @Flag(name: .long, help: "Print the plan (every tensor's new name, type and shape, the metadata) and write nothing.")
    var dryRun = false

    @OptionGroup var model: ModelOptions
    @OptionGroup var runtime: RuntimeOptions

    /// Files copied from the source folder next to the weights.
    static let companionFiles = [
        "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
        "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json",
    ]

    var writesSingleFile: Bool { output.hasSuffix(".safetensors") }
    var writesGGUF: Bool { output.hasSuffix(".gguf") }
    var readsGGUF: Bool { input.hasSuffix(".gguf") }

    func validate() throws {
        if let maxShardSize {
            guard ByteSize.parse(maxShardSize) != nil else {
                throw ValidationError("--max-shard-size '\(maxShardSize)' is not a size; use e.g. 2G, 500MB or 4GiB")
            }
            if writesSingleFile {
                throw ValidationError("--max-shard-size needs a folder output; '\(output)' names a single .safetensors file")
            }
        }
        if type != nil && !(writesGGUF && !readsGGUF) {
            throw ValidationError("--type sets the weights of a GGUF written from a Hugging Face checkpoint; use --dtype for safetensors output")
        }
        if writesGGUF && dtype != nil {
            throw ValidationError("--dtype applies to safetensors output; for GGUF output use --type (a GGUF rewrite keeps every tensor's type)")
        }
    }

    func run() throws {
        // The source's format is read from its content (Checkpoint.open), not its name.
        let checkpoint = try Checkpoint.open(input, position: try model.positionSpec)
        if checkpoint.format == .gguf && type != nil {
            throw ValidationError("\(input) is a GGUF file: --type sets the weights of a GGUF written from a Hugging Face checkpoint")
        }
        switch (checkpoint.format == .gguf, writesGGUF) {
        case (true, true): try rewriteGGUF()
        case (false, true): try writeGGUF(checkpoint)
        case (true, false): try writeHuggingFace(checkpoint)
        case (false, false): try retype(checkpoint)
        }
    }

    /// Hugging Face checkpoint → GGUF for llama.cpp.
    func writeGGUF(_ checkpoint: Checkpoint) throws {
        let plan = try GGUFExport.plan(checkpoint, type: type)
        plan.notes.forEach(Terminal.note)
        let total = plan.tensors.reduce(0) { $0 + $1.byteCount }
        if dryRun {
            Terminal.output("\(input) → \(output): architecture \(plan.architecture.name), weights \(plan.outputType.rawValue), \(ByteSize.format(total))")
            Terminal.output(Terminal.table(plan.entries.map { [$0.source, $0.name + ($0.permuted ? " (Q/K permuted)" : ""), $0.type.name, "\($0.shape)"] },
                                           header: ["source", "GGUF name", "type", "shape"]))
            Terminal.output(plan.metadata.filter { !$0.key.hasPrefix("tokenizer.ggml.") || $0.value.arrayValue == nil }
                .map { "\($0.key) = \($0.value.summary())" }.joined(separator: "\n"))
            return
        }
        let paths = try GGUFWriter.write(metadata: plan.metadata, tensors: plan.tensors, to: output,
                                         maxShardBytes: maxShardSize.flatMap(ByteSize.parse), progress: Progress("converting").update)
        Terminal.info("wrote \(Self.describe(paths)): \(plan.architecture.name), \(plan.tensors.count) tensors, \(ByteSize.format(total))")
    }

    /// GGUF → Hugging Face folder.
    func writeHuggingFace(_ checkpoint: Checkpoint) throws {
        let plan = try HuggingFaceExport.plan(checkpoint, dtype: dtype?.dtype)
        plan.notes.forEach(Terminal.note)
        let total = plan.tensors.reduce(0) { $0 + $1.byteCount }
        if dryRun {
            Terminal.output("\(input) → \(output): \(plan.tensors.count) tensors in \(plan.dtype.code), \(ByteSize.format(total)); files: \(plan.files.map(\.name).joined(separator: ", "))")
            Terminal.output(Terminal.table(plan.tensors.map { [$0.name, $0.type.name, "\($0.shape)"] }, header: ["name", "type", "shape"]))
            return
        }
        let metadata = ["format": "pt", "nopekit.tool": "nopekit \(Nopekit.version) convert"]
        if writesSingleFile {
            Terminal.note("a single .safetensors file has no config.json or tokenizer; write a folder to keep them")
            try SafetensorsWriter.write(plan.tensors, metadata: metadata, to: output)
        } else {
            try SafetensorsWriter.writeFolder(plan.tensors, metadata: metadata, to: output, maxShardBytes: maxShardSize.flatMap(ByteSize.parse),
                                              extraFiles: { plan.files }, progress: Progress("converting").update)
        }
        Terminal.info("wrote \(output): \(plan.tensors.count) tensors, \(ByteSize.format(total))")
    }

    /// Re-types and re-shards a Hugging Face checkpoint.
    func retype(_ checkpoint: Checkpoint) throws {
        let store = checkpoint.store
        let target = dtype?.dtype
        let outputs = try store.tensors.map { try TensorRetyping.output($0, from: store, target: target) }
        let total = outputs.reduce(0) { $0 + $1.byteCount }
        if dryRun {
            Terminal.output(Terminal.table(outputs.map { [$0.name, $0.type.name, "\($0.shape)"] }, header: ["name", "type", "shape"]))
            return
        }
        var metadata = ["format": "pt"]
        metadata["nopekit.tool"] = "nopekit \(Nopekit.version) convert" + (dtype.map { " --dtype \($0.rawValue)" } ?? "")
        let progress = Progress("converting")
        if writesSingleFile {
            var done = 0
            try SafetensorsWriter.write(outputs, metadata: metadata, to: output) { bytes in
                done += bytes
                progress.update(done, total)
            }
        } else {
            try SafetensorsWriter.writeFolder(
                outputs, metadata: metadata, to: output,
                maxShardBytes: maxShardSize.flatMap(ByteSize.parse),
                extraFiles: { try companionFiles(of: checkpoint, target: target) },
                progress: progress.update)
        }
        Terminal.info("wrote \(output): \(outputs.count) tensors, \(ByteSize.format(total))")
    }

    /// GGUF → GGUF: every metadata entry (in order, split bookkeeping dropped) and every tensor
    /// byte for byte, merged from split parts or split anew with --max-shard-size.
    func rewriteGGUF() throws {
        let source = try GGUFFile(path: input)
        let tensors = source.tensors.map { OutputTensor.copy($0, from: source) }
        if dryRun {
            Terminal.output("\(input) → \(output): \(tensors.count) tensors and \(source.metadata.count) metadata entries copied unchanged, \(ByteSize.format(tensors.reduce(0) { $0 + $1.byteCount }))")
            return
        }
        let progress = Progress("rewriting")
        let paths = try GGUFWriter.write(metadata: source.metadata, tensors: tensors, to: output,
                                         maxShardBytes: maxShardSize.flatMap(ByteSize.parse), progress: progress.update)
        Terminal.info("wrote \(Self.describe(paths)): \(tensors.count) tensors, \(ByteSize.format(tensors.reduce(0) { $0 + $1.byteCount }))")
    }

    /// The file written, or a split's parts by name ("3 parts, q-00001-of-00003.gguf … q-00003-of-00003.gguf").
    static func describe(_ paths: [String]) -> String {
        guard paths.count > 1, let first = paths.first, let last = paths.last else { return paths.first ?? "" }
        return "\(paths.count) parts, \(first) … \((last as NSString).lastPathComponent)"
    }

    /// config.json (with the new dtype) and tokenizer files from the source folder.
    func companionFiles(of checkpoint: Checkpoint, target: DType?) throws -> [(name: String, contents: [UInt8])] {
        var files: [(name: String, contents: [UInt8])] = []
        if let configPath = checkpoint.configPath {
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: configPath)))
            if let name = target?.torchName, let json = try? JSONReader.parse(bytes), case .object(var members) = json {
                var replaced = false
                for i in members.indices where members[i].key == "torch_dtype" || members[i].key == "dtype" {
                    members[i].value = .string(name)
                    replaced = true
                }
                if !replaced { members.append(JSONMember("torch_dtype", .string(name))) }
                bytes = Array((JSONWriter.pretty(.object(members)) + "\n").utf8)
            }
            files.append(("config.json", bytes))
        }
        for name in Self.companionFiles {
            let path = (checkpoint.folder as NSString).appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: path) {
                files.append((name, [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))))
            }
        }
        return files
    }
}

extension GGUFOutputType: ExpressibleByArgument {}
