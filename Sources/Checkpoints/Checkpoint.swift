import Foundation

/// An opened checkpoint: its tensors (lazily mapped) and, when it has one, its model config.
///
/// `open` accepts a Hugging Face folder (`model.safetensors` or shards with an index, plus
/// `config.json`), a single `.safetensors` file (with a `config.json` beside it if present), or
/// a `.gguf` file (the first part of a split), whose metadata is its config.
public final class Checkpoint {
    public enum Format: String, Sendable {
        case safetensorsFile = "safetensors"
        case huggingFaceFolder = "hf-folder"
        case gguf = "gguf"
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
            store = try ShardedSafetensors(folder: path)
            folder = path
            format = .huggingFaceFolder
        } else if path.hasSuffix(".safetensors") {
            store = try SafetensorsFile(path: path)
            folder = (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
            format = .safetensorsFile
        } else if path.hasSuffix(".gguf") {
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
            let dir = (path as NSString).deletingLastPathComponent
            return Checkpoint(path: path, format: .gguf, store: file, folder: dir.isEmpty ? "." : dir,
                              config: config, configProblem: problem, configPath: nil)
        } else {
            throw CheckpointError.unrecognised(path: path)
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
            return "\(p): not a recognised checkpoint: expected a Hugging Face folder, a .safetensors file or a .gguf file"
        }
    }
}
