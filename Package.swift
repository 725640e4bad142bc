// swift-tools-version:6.0
// nopekit: NoPE length extension by per-head softmax temperatures.
// Targets and the direction of imports are described in docs/architecture.md.
import PackageDescription

import Foundation

/// The engine's and the tokenizers' inner loops are 20–50× slower unoptimised, so the test
/// suite (a debug build) spent minutes running small models. `make test` sets
/// NOPEKIT_OPTIMIZE_DEBUG=1 to compile those two targets with -O in debug builds too. Only
/// then: a package that depends on nopekit must not see unsafe flags.
let optimizedInDebug: [SwiftSetting] = ProcessInfo.processInfo.environment["NOPEKIT_OPTIMIZE_DEBUG"] == "1"
    ? [.unsafeFlags(["-O"], .when(configuration: .debug))] : []

let package = Package(
    name: "nopekit",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "nopekit", targets: ["nopekit"]),
        .library(name: "Checkpoints", targets: ["Checkpoints"]),
        .library(name: "Engine", targets: ["Engine"]),
        .library(name: "Tokenizers", targets: ["Tokenizers"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CFileCopy"),
        .systemLibrary(name: "COpenMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        // Splitting work across the ranks of a data-parallel job; one process by default. No MPI
        // here: the library targets stay free of it, only the executable links it (MPIRuntime).
        .target(name: "DataParallel"),
        .target(name: "MPIRuntime", dependencies: ["DataParallel", "COpenMPI"]),
        .target(name: "Checkpoints", dependencies: ["CZlib", "CCrypto", "CFileCopy"]),
        .target(name: "Engine", dependencies: ["Checkpoints", "COpenBLAS"], swiftSettings: optimizedInDebug),
        .target(name: "Tokenizers", dependencies: ["Checkpoints"], swiftSettings: optimizedInDebug),
        .target(name: "TemperatureSearch", dependencies: ["Engine", "Tokenizers", "Checkpoints", "DataParallel"]),
        // Random-weight models and memory probes for `nopekit bench`: kept out of the library path.
        .target(name: "BenchSupport", dependencies: ["Engine", "Checkpoints", "Baking"]),
        .target(name: "Pretraining", dependencies: ["Engine", "Tokenizers", "Checkpoints", "Verification"]),
        // Writing patched checkpoints: file work only, no BLAS, no model run.
        .target(name: "Baking", dependencies: ["Checkpoints"]),
        // Measuring a model: perplexity, passkey retrieval, entropy, equivalence; reports and plots.
        .target(name: "Verification", dependencies: ["Engine", "Tokenizers", "Checkpoints", "DataParallel"]),
        // Converting checkpoints between Hugging Face folders and llama.cpp GGUF (names, Q/K
        // permutation, metadata, vocabulary), and baking into the other format through the
        // bake's scaled view; file work only, like Baking.
        .target(name: "Conversion", dependencies: ["Checkpoints", "Tokenizers", "Baking"]),
        // The main job, search → bake → verify, for `nopekit extend`.
        .target(name: "Pipeline", dependencies: ["Checkpoints", "Engine", "Tokenizers", "TemperatureSearch", "Baking", "Verification", "Pretraining"]),
        .executableTarget(
            name: "nopekit",
            dependencies: [
                "Checkpoints", "Engine", "Tokenizers", "TemperatureSearch", "Pretraining", "Baking", "Verification", "Pipeline", "BenchSupport", "Conversion", "MPIRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .testTarget(name: "CheckpointsTests", dependencies: ["Checkpoints"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine"]),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers"]),
        .testTarget(name: "TemperatureSearchTests", dependencies: ["TemperatureSearch", "BenchSupport"]),
        .testTarget(name: "PretrainingTests", dependencies: ["Pretraining", "Verification"]),
        .testTarget(name: "BakingTests", dependencies: ["Baking", "Engine"]),
        .testTarget(name: "VerificationTests", dependencies: ["Verification", "Tokenizers", "Engine"]),
        .testTarget(name: "ConversionTests", dependencies: ["Conversion", "Engine", "Tokenizers", "Baking"]),
        // The golden outputs are read by path (CLIRunner.root), not bundled as resources.
        .testTarget(name: "NopekitCLITests", dependencies: ["nopekit"], exclude: ["Golden"]),
    ],
    swiftLanguageModes: [.v5]
)
