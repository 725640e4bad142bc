import Checkpoints
import Engine
import Foundation
import Tokenizers
import Verification

/// An organism's behaviour at one length on held-out text of its corpus, measured by the
/// Verification target (the same code as `nopekit verify`): perplexity by llama.cpp's chunk
/// protocol (BOS first, second half of each chunk scored), passkey retrieval in the corpus's
/// own wording by greedy decoding, and mean attention entropy per layer.
public struct Evaluation {
    let model: LlamaModel

    /// The byte vocabulary as a tokenizer (builds the passkey prompts).
    static let tokenizer: Tokenizer = {
        do {
            return try Tokenizer.load(tokenizerJSON: ByteVocabulary.tokenizerJSON, config: ByteVocabulary.tokenizerConfigJSON,
                                      name: "the byte vocabulary")
        } catch { fatalError("the built-in byte vocabulary does not load: \(error)") }
    }()

    public init(parameters: Parameters, config: ModelConfig, threads: Int) throws {
        model = try LlamaModel(store: ParameterStore(parameters), config: config, policy: .resident, threads: threads)
    }

    public init(model: LlamaModel) { self.model = model }

    /// Mean next-token loss (nats) over about `sequences` chunks of `length`, and the fraction
    /// of `sequences` passkey prompts in `template`'s wording (10 depths × sequences/10
    /// trials) answered exactly; the passkey is nil when `length` is below the shortest prompt.
    public func run(heldOut: [UInt8], length: Int, sequences: Int, template: PasskeyTemplate, temperatures: [[Float]?]? = nil,
                    seed: UInt64) throws -> (loss: Double, passkey: Double?) {
        let scoredPerChunk = length - 1 - length / 2
        let perplexity = try Perplexity(model: model, temperatures: temperatures)
            .measure(.chunks, stream: heldOut.map(Int.init), length: length, bos: ByteVocabulary.bos, maxTokens: sequences * scoredPerChunk)
        let grid = PasskeyGrid(lengths: [length], trials: max(1, sequences / PasskeyGrid.depths), seed: seed)
        let prompts: [PasskeyPrompt]
        do { prompts = try grid.prompts(template, tokenizer: Self.tokenizer) } catch VerificationError.lengthTooShortForPrompt {
            return (perplexity.meanLoss, nil)
        }
        let outcomes = try PasskeyRun(model: model, temperatures: temperatures).run(prompts)
        return (perplexity.meanLoss, Double(outcomes.filter(\.correct).count) / Double(outcomes.count))
    }

    /// Mean attention entropy (bits) per layer over the first `sequences` chunks of `length`.
    public func meanEntropy(heldOut: [UInt8], length: Int, sequences: Int, temperatures: [[Float]?]? = nil) throws -> [Double] {
        let windows = Perplexity.windows(.chunks, stream: heldOut.map(Int.init), length: length, bos: ByteVocabulary.bos).windows
        let bits = try AttentionEntropy.measure(model, windows: Array(windows.prefix(sequences)), temperatures: temperatures)
        return bits.map { $0.reduce(0, +) / Double($0.count) }
    }
}
