import Checkpoints
import Engine
import Foundation
import Tokenizers

/// A checkpoint opened for running: config, engine and its own tokenizer (if it has one). Every
/// command that runs a model opens it this way.
public struct OpenedModel {
    public let checkpoint: Checkpoint
    public let config: ModelConfig
    public let model: LlamaModel
    public let tokenizer: Tokenizer?

    /// Models whose weights widened to F32 fit in this many bytes are kept resident; larger ones
    /// are streamed layer by layer on every pass (bounded memory, slower).
    public static let residentLimit = 2 << 30

    public init(_ path: String, position: PositionSpec? = nil, threads: Int) throws {
        checkpoint = try Checkpoint.open(path, position: position)
        config = try checkpoint.requireConfig()
        let elements = checkpoint.store.tensors.reduce(0) { $0 + $1.shape.reduce(1, *) }
        model = try LlamaModel(store: checkpoint.store, config: config, policy: 4 * elements <= Self.residentLimit ? .resident : .streaming,
                               threads: threads)
        tokenizer = try? Tokenizer.load(checkpoint.format == .gguf ? checkpoint.path : checkpoint.folder)
    }

    /// The folder that holds the model's companion files (tokenizer, passkey template), nil for a lone GGUF file.
    public var companionFolder: String? { checkpoint.format == .gguf ? nil : checkpoint.folder }

    /// BOS for protocols that put it first: the tokenizer's, else the config's.
    public var bos: Int? { tokenizer?.bosID ?? config.bosTokenID }

    /// How the tensor that carries the temperatures (q_proj, or the q-norm) is stored: the
    /// equivalence tolerance depends on it.
    public var scaledTensorType: TensorType {
        let convention = NameConvention.detect(checkpoint.store)
        let tensor: LayerTensor = BakeTarget.of(config, store: checkpoint.store) == .queryRows ? .q : .qNorm
        return (try? checkpoint.store.info(TensorRole.layer(0, tensor).name(convention)).type) ?? .plain(.f32)
    }
}
