import ArgumentParser
import Checkpoints

/// Options of every command that opens a model.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Per-layer position encoding, overriding config.json: none, rope, every:N (every N-th layer NoPE) or layers:3,7,… (these layers NoPE, 0-based).",
        valueName: "pattern"))
    var position: String?

    func validate() throws {
        if let position { _ = try parsedSpec(position) }
    }

    var positionSpec: PositionSpec? {
        get throws { try position.map(parsedSpec) }
    }

    private func parsedSpec(_ text: String) throws -> PositionSpec {
        do { return try PositionSpec(parsing: text) } catch { throw ValidationError("\(error)") }
    }
}

/// Options of every command: the BLAS start-up check and threads.
struct RuntimeOptions: ParsableArguments {
    @Flag(name: .customLong("no-blas-check"), help: "Keep OpenBLAS's own kernel choice even if it is the slow generic one (warns).")
    var noBLASCheck = false
}

/// `--json`: machine-readable output on stdout.
struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print machine-readable JSON on stdout.")
    var json = false
}

/// Compute resources.
struct ComputeOptions: ParsableArguments {
    @Option(name: .long, help: "Worker threads for attention and BLAS.")
    var threads: Int = 2

    func validate() throws {
        guard threads >= 1, threads <= 256 else { throw ValidationError("--threads must be between 1 and 256") }
    }
}
