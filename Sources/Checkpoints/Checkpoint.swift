import Foundation

/// An opened checkpoint: its tensors (lazily mapped) and, when it has one, its model config.
///
/// `open` accepts a Hugging Face folder (`model.safetensors` or shards with an index, else
/// `pytorch_model.bin` or its shards, as transformers prefers; plus `config.json`), a single
/// `.safetensors` or PyTorch `.bin` file (with a `config.json` beside it if present), or a GGUF
/// file (the first part of a split), whose metadata is its config. A file's format is read from
/// its first bytes, not its name.
public final class Checkpoint {
    public enum Format: String, Sendable {
        case safetensorsFile = "safetensors"
        case huggingFaceFolder = "hf-folder"
        case gguf = "gguf"
        /// A PyTorch `.bin` file or a folder of them (read through the restricted unpickler).
        case pytorch = "pytorch"
    }

    public let path: String
    public let format: Format
    public let store: any TensorStore
    /// The folder that holds config.json and tokenizer files.
    public let folder: String
    /// The decoded model config, or nil with `configProblem` saying why.
    public let config: ModelConfig?
    public let configProblem: (any Error)?
    public let configPath: String?

    public init(path: String, format: Format, store: any TensorStore, folder: String,
                config: ModelConfig?, configProblem: (any Error)?, configPath: String?) {
        self.path = path
        self.format = format
        self.store = store
        self.folder = folder
        self.config = config
        self.configProblem = configProblem
        self.configPath = configPath
    }

    /// Opens `path`. Tensor-format errors are thrown; a missing or unsupported config is kept in
    /// `configProblem` so that a checkpoint can still be inspected. `position` overrides what the
    /// config says about per-layer position encoding.
    public static func open(_ path: String, position: PositionSpec? = nil) throws -> Checkpoint {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else {
            throw FileError.cannotOpen(path: path, reason: "no such file or folder")
        }
        let store: any TensorStore
        let folder: String
        let format: Format
        if isDir.boolValue {
            func has(_ name: String) -> Bool { fm.fileExists(atPath: (path as NSString).appendingPathComponent(name)) }
            if !has(ShardedSafetensors.indexFileName) && !has(ShardedSafetensors.singleFileName)
                && (has(ShardedPyTorch.indexFileName) || has(ShardedPyTorch.singleFileName)) {
                store = try ShardedPyTorch(folder: path)
                format = .pytorch
            } else {
                store = try ShardedSafetensors(folder: path)
                format = .huggingFaceFolder
            }
            folder = path
        } else {
            let parent = (path as NSString).deletingLastPathComponent
            folder = parent.isEmpty ? "." : parent
            switch try sniff(path) {
            case .gguf:
                // A GGUF file carries its own config in its metadata.
                let file = try GGUFFile(path: path)
                var config: ModelConfig? = nil
                var problem: (any Error)? = nil
                do {
                    config = try ModelConfig.decode(gguf: file.metadata, tensors: file.tensors, file: path, override: position)
                } catch let error as PositionSpecError {
                    throw error
                } catch {
                    problem = error
                }
                return Checkpoint(path: path, format: .gguf, store: file, folder: folder,
                                  config: config, configProblem: problem, configPath: nil)
            case .pytorch:
                store = try PyTorchFile(path: path)
                format = .pytorch
            case .safetensorsFile:
                store = try SafetensorsFile(path: path)
                format = .safetensorsFile
            case .huggingFaceFolder:
                throw CheckpointError.unrecognised(path: path)
            }
        }
        let configPath = (folder as NSString).appendingPathComponent("config.json")
        var config: ModelConfig? = nil
        var problem: (any Error)? = nil
        if fm.fileExists(atPath: configPath) {
            do {
                config = try ModelConfig.load(path: configPath, override: position)
            } catch let error as PositionSpecError {
                throw error  // the user's own --position does not fit this model: say so
            } catch {
                problem = error
            }
        } else if (try? fm.attributesOfItem(atPath: configPath)) != nil {
            // the name exists but does not resolve: a dangling symbolic link or a link loop
            problem = ModelConfigError.unreadable(file: configPath, detail: "a symbolic link to a missing file, or a loop of links")
        } else {
            problem = ModelConfigError.noConfig(path: path)
        }
        return Checkpoint(path: path, format: format, store: store, folder: folder, config: config,
                          configProblem: problem, configPath: fm.fileExists(atPath: configPath) ? configPath : nil)
    }

    /// A file's format from its first bytes: `GGUF`; a zip (`PK`, PyTorch's format since 1.6) or
    /// a pickle (`0x80`, its legacy format); a safetensors header (an 8-byte length, then `{`).
    /// The name decides only when the bytes say nothing (a file shorter than its magic).
    static func sniff(_ path: String) throws -> Format {
        // Only a regular file is read here: a FIFO or a device would block or never end; the
        // format's own reader then refuses it by name.
        var info = stat()  // follows symbolic links (the Hugging Face cache links every file)
        let regular = stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
        var head: [UInt8] = []
        if regular, let handle = FileHandle(forReadingAtPath: path) {
            defer { try? handle.close() }
            head = [UInt8]((try? handle.read(upToCount: 9)) ?? Data())
        }
        if head.starts(with: GGUF.magic) { return .gguf }
        if head.starts(with: [0x50, 0x4B]) || head.first == 0x80 { return .pytorch }
        if head.count == 9 && head[8] == UInt8(ascii: "{") { return .safetensorsFile }
        if path.hasSuffix(".gguf") { return .gguf }
        if path.hasSuffix(".bin") || path.hasSuffix(".pt") || path.hasSuffix(".pth") { return .pytorch }
        if path.hasSuffix(".safetensors") { return .safetensorsFile }
        throw CheckpointError.unrecognised(path: path)
    }

    /// The config, or the reason there is none, for commands that need one.
    public func requireConfig() throws -> ModelConfig {
        if let config { return config }
        throw configProblem ?? ModelConfigError.noConfig(path: path)
    }
}

public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    case unrecognised(path: String)

    public var description: String {
        switch self {
        case .unrecognised(let p):
            return "\(p): not a recognised checkpoint: expected a Hugging Face folder, or a safetensors, GGUF or PyTorch .bin file"
        }
    }
}
