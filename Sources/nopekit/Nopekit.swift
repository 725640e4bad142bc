import ArgumentParser

/// The `nopekit` command: one binary, one subcommand per stage of the pipeline.
struct Nopekit: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "nopekit",
        abstract: "Extend NoPE and hybrid language models to longer inputs with per-head softmax temperatures.",
        discussion: """
            Reads safetensors checkpoints (single files and sharded Hugging Face folders) and \
            GGUF files, converts between float types and shard sizes, tokenizes with the \
            model's own tokenizer, searches per-head temperatures that extend a model beyond \
            its training length, and checks the machine's BLAS set-up. Baking and verification \
            come with later releases.
            """,
        version: version,
        subcommands: [Inspect.self, Convert.self, Tokenize.self, Score.self, SearchCommand.self, BakeCommand.self, Verify.self, CorpusCommand.self, Pretrain.self, Doctor.self, Bench.self])
}
