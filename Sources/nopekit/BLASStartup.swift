#if canImport(Glibc)
import Glibc
#endif
import Engine
import Foundation

/// The start-up check of `BLASRuntime.check`, acted on: re-execute this binary with
/// `OPENBLAS_CORETYPE` set, or warn loudly when that is not possible or not wanted.
enum BLASStartup {
    static let skipFlag = "--no-blas-check"

    /// Test hook: with this variable set (and no re-exec yet), the loaded core is treated as the
    /// generic fallback, so tests can exercise the real re-exec on machines OpenBLAS detects well.
    static let assumeGenericVariable = "NOPEKIT_TEST_ASSUME_GENERIC_CORE"

    static func run(arguments: [String]) {
        let environment = ProcessInfo.processInfo.environment
        var core = BLASRuntime.coreName
        if environment[assumeGenericVariable] != nil, environment["NOPEKIT_BLAS_REEXEC"] == nil { core = "Prescott" }
        let decision = BLASRuntime.check(core: core, cpu: .current,
                                         environment: environment, skip: arguments.contains(skipFlag))
        let fixes = arguments.contains(skipFlag) || environment["NOPEKIT_BLAS_REEXEC"] != nil
            ? [:] : BLASRuntime.environmentFixes(environment)
        switch decision {
        case .ok:
            if !fixes.isEmpty { reexec(setting: fixes) }
        case .reexec(let coreType, let replacing):
            if let replacing {
                Terminal.note("OPENBLAS_CORETYPE=\(replacing) is weaker than this CPU supports; using \(coreType) (pass \(skipFlag) to keep \(replacing))")
            }
            reexec(setting: fixes.merging(["OPENBLAS_CORETYPE": coreType]) { a, _ in a })
            // Only reached if exec failed: carry on with the slow kernels, loudly.
            Terminal.warn("could not re-execute with OPENBLAS_CORETYPE=\(coreType) (\(String(cString: strerror(errno)))); "
                + "matrix products will run on OpenBLAS's generic \(BLASRuntime.coreName) kernels, about 5× slower")
        case .warn(let core, let suggested, let reason):
            Terminal.warn("OpenBLAS is using its generic \(core) kernels on a CPU that supports \(suggested) (\(reason)); "
                + "matrix products will run about 5× slower. Set OPENBLAS_CORETYPE=\(suggested) before starting nopekit, "
                + "or leave the variable unset and drop \(skipFlag) to let nopekit set it.")
        }
    }

    /// Re-executes this binary with `variables` added to the environment (returns only on failure).
    static func reexec(setting variables: [String: String]) {
        for (k, v) in variables { setenv(k, v, 1) }
        setenv("NOPEKIT_BLAS_REEXEC", "1", 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
    }
}
