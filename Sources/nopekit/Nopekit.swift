import ArgumentParser

/// The `nopekit` command: one binary, one subcommand per stage of the pipeline.
struct Nopekit: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "nopekit",
        abstract: "Extend NoPE and hybrid language models to longer inputs with per-head softmax temperatures.",
        discussion: """
            Reads safetensors checkpoints (single files and sharded Hugging Face folders) and \
            GGUF files, runs Llama-family models on the CPU, searches per-head temperatures \
            that extend a model beyond its training length, bakes them into a patched \
            checkpoint that stock runtimes load, and verifies it (perplexity, passkey \
            retrieval, attention entropy). `nopekit extend` does all three in one command.
            """,
        version: version,
        subcommands: [Inspect.self, Convert.self, Tokenize.self, Score.self, SearchCommand.self, BakeCommand.self, Verify.self, Extend.self, CorpusCommand.self, Pretrain.self, Doctor.self, Bench.self])
}
