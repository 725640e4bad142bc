// swift-tools-version:5.4
// libFuzzer targets for nopekit's parsers, one executable per parser. A package of its own so
// that the main package never sees the fuzzer flags; build and run them with `Tests/Fuzz/run`
// (docs/reliability.md). Each target's LLVMFuzzerTestOneInput feeds one input to one parser
// and then uses whatever it accepted, as a caller would; an error is a correct answer, a
// crash, hang, sanitizer report or runaway allocation is a finding.
import PackageDescription

let parsers = ["FuzzSafetensors", "FuzzGGUF", "FuzzPyTorch", "FuzzTokenizer", "FuzzConfig", "FuzzTemperatureTable", "FuzzChecksumManifest"]

let package = Package(
    name: "nopekit-fuzz",
    dependencies: [.package(name: "nopekit", path: "../..")],
    targets: [
        .target(name: "FuzzSupport", dependencies: [.product(name: "Checkpoints", package: "nopekit")]),
    ] + parsers.map { name in
        // `.target` with a main.swift, not `.executableTarget`: from tools 5.5 on, SwiftPM
        // renames each executable's entry point and links `main` to it, which collides with
        // libFuzzer's own `main` (the targets are built with -parse-as-library and define
        // LLVMFuzzerTestOneInput only).
        .target(name: name, dependencies: [
            "FuzzSupport",
            .product(name: "Checkpoints", package: "nopekit"),
            .product(name: "Tokenizers", package: "nopekit"),
        ])
    }
)
