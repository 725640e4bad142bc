import ArgumentParser
import Checkpoints
import Engine
import Foundation

/// `nopekit doctor`: what this machine offers nopekit, measured.
struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the CPU features, the OpenBLAS kernels in use and the measured sgemm speed.")

    @Option(name: .long, help: "Seconds to spend measuring sgemm.")
    var seconds: Double = 1

    @Option(name: .long, help: "Matrix size of the sgemm probe (n × n × n).")
    var size: Int = 1024

    @OptionGroup var output: OutputOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        guard seconds > 0, seconds <= 60 else { throw ValidationError("--seconds must be in (0, 60]") }
        guard size >= 16, size <= 8192 else { throw ValidationError("--size must be between 16 and 8192") }
    }

    func run() throws {
        let cpu = CPUFeatures.current
        let env = ProcessInfo.processInfo.environment
        let core = BLASRuntime.coreName
        let probe = BLASRuntime.measureSgemm(n: size, seconds: seconds)
        let generic = BLASRuntime.isGenericCore(core)
        let reexecuted = env["NOPEKIT_BLAS_REEXEC"] != nil
        if output.json {
            let json = JSONValue.object([
                JSONMember("cpu", .string(cpu.model)),
                JSONMember("logical_cores", .int(cpu.logicalCores)),
                JSONMember("cpu_flags", .array(cpu.relevantFlags.map { .string($0) })),
                JSONMember("blas_core", .string(core)),
                JSONMember("blas_core_generic", .bool(generic)),
                JSONMember("stronger_core", BLASRuntime.strongerCore(than: core, cpu: cpu).map { .string($0) } ?? .null),
                JSONMember("blas_config", .string(BLASRuntime.configuration)),
                JSONMember("openblas_coretype", env["OPENBLAS_CORETYPE"].map { .string($0) } ?? .null),
                JSONMember("reexecuted", .bool(reexecuted)),
                JSONMember("blas_threads", .int(BLASRuntime.threadCount)),
                JSONMember("openblas_thread_timeout", env["OPENBLAS_THREAD_TIMEOUT"].map { .string($0) } ?? .null),
                JSONMember("sgemm_n", .int(size)),
                JSONMember("sgemm_calls", .int(probe.calls)),
                JSONMember("sgemm_gflops", .double((probe.gflops * 10).rounded() / 10)),
            ])
            Terminal.output(JSONWriter.pretty(json, sortKeys: false))
            return
        }
        var lines: [String] = []
        func row(_ k: String, _ v: String) { lines.append(k.padding(toLength: 14, withPad: " ", startingAt: 0) + v) }
        row("cpu", "\(cpu.model) (\(cpu.logicalCores) logical cores)")
        row("cpu flags", cpu.relevantFlags.joined(separator: " "))
        var coreNote = generic ? "generic fallback kernels: slow" : "optimised kernels"
        if reexecuted { coreNote += "; nopekit re-executed itself with OPENBLAS_CORETYPE=\(env["OPENBLAS_CORETYPE"] ?? "unset")" }
        else if let set = env["OPENBLAS_CORETYPE"] { coreNote += "; OPENBLAS_CORETYPE=\(set) from the environment" }
        row("blas core", "\(core) (\(coreNote))")
        if let better = BLASRuntime.strongerCore(than: core, cpu: cpu) {
            row("hint", "this CPU supports \(better) kernels; run without --no-blas-check to use them")
        }
        row("blas build", BLASRuntime.configuration)
        row("blas threads", "\(BLASRuntime.threadCount) (OPENBLAS_THREAD_TIMEOUT=\(env["OPENBLAS_THREAD_TIMEOUT"] ?? "default"))")
        row("sgemm", String(format: "%.1f GFLOP/s (n = %d, %d calls in %.1f s)", probe.gflops, size, probe.calls, seconds))
        Terminal.output(lines.joined(separator: "\n"))
    }
}
