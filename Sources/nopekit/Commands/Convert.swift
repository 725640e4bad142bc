import ArgumentParser
import Checkpoints
import Foundation

/// `nopekit convert`: re-type and re-shard a safetensors checkpoint, streaming tensor by tensor.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a safetensors checkpoint to another float type and/or shard size.",
        discussion: """
            IN is a Hugging Face folder or a .safetensors file. OUT ending in .safetensors is \
            written as one file; any other OUT is written as a Hugging Face folder (shards named \
            model-0000i-of-0000N.safetensors with an index, config.json with its torch_dtype \
            updated, tokenizer files copied). Float tensors are rounded to nearest even; integer \
            tensors are copied unchanged. A .gguf IN (the first part of a split model) is \
            rewritten to a .gguf OUT with every metadata entry and tensor unchanged, merged or \
            split anew by --max-shard-size (OUT-00001-of-0000N.gguf). The output appears only \
            when complete; IN is never modified and an existing OUT is never overwritten.
            """)

    enum TargetType: String, ExpressibleByArgument, CaseIterable {
        case f32, f16, bf16
        var dtype: DType { switch self { case .f32: .f32; case .f16: .f16; case .bf16: .bf16 } }
    }

    @Argument(help: "Source checkpoint (folder, .safetensors or .gguf file).")
    var input: String

    @Argument(help: "Destination (.safetensors, .gguf or folder); must not exist.")
    var output: String

    @Option(name: .long, help: "Float type of the output: f32, f16 or bf16 (default: keep each tensor's type).")
    var dtype: TargetType?

    @Option(name: .long, help: ArgumentHelp("Largest shard (tensor bytes), e.g. 2G, 500MB, 4GiB; folder or .gguf output.", valueName: "size"))
    var maxShardSize: String?

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
        if readsGGUF != writesGGUF {
            throw ValidationError("converting between GGUF and safetensors (tensor names, Q/K permutation) is not supported yet; convert GGUF to GGUF or safetensors to safetensors")
        }
        if writesGGUF && dtype != nil {
            throw ValidationError("--dtype applies to safetensors output; a GGUF rewrite keeps every tensor's type")
        }
    }

    func run() throws {
        if writesGGUF { return try rewriteGGUF() }
        let checkpoint = try Checkpoint.open(input, position: try model.positionSpec)
        let store = checkpoint.store
        let target = dtype?.dtype
        let outputs = try store.tensors.map { try TensorRetyping.output($0, from: store, target: target) }
        var metadata = ["format": "pt"]
        metadata["nopekit.tool"] = "nopekit \(Nopekit.version) convert" + (dtype.map { " --dtype \($0.rawValue)" } ?? "")
        let progress = Progress("converting")
        let total = outputs.reduce(0) { $0 + $1.byteCount }
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
        let progress = Progress("rewriting")
        try GGUFWriter.write(metadata: source.metadata, tensors: tensors, to: output,
                             maxShardBytes: maxShardSize.flatMap(ByteSize.parse), progress: progress.update)
        Terminal.info("wrote \(output): \(tensors.count) tensors, \(ByteSize.format(tensors.reduce(0) { $0 + $1.byteCount }))")
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
