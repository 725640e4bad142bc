import COpenBLAS
import Foundation

/// What OpenBLAS chose at load time, and how to make it choose well.
///
/// Debian's OpenBLAS 0.3.21 (built with DYNAMIC_ARCH) does not recognise recent CPUs and falls
/// back to its generic `Prescott` kernels: sgemm runs about 5× slower than with the SkylakeX
/// kernels on an AVX-512 machine. The choice is made when the library loads and can only be
/// changed by `OPENBLAS_CORETYPE` in the environment *before* the process starts, so the CLI
/// checks the core at start-up and re-executes itself with the variable set
/// (see `check`).
public enum BLASRuntime {
    /// The kernel family OpenBLAS selected, e.g. `SkylakeX`, `Haswell`, `Prescott`.
    public static var coreName: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }

    /// OpenBLAS's build description (version, DYNAMIC_ARCH, threading, max threads).
    public static var configuration: String {
        guard let p = openblas_get_config() else { return "unknown" }
        return String(cString: p)
    }

    public static var threadCount: Int { Int(openblas_get_num_threads()) }

    /// OpenBLAS's thread count is process-wide and the kernels switch it (one thread per worker
    /// inside attention), so whole forward and backward passes hold this lock: two engines in
    /// one process (a server, parallel tests) take turns instead of changing each other's
    /// threading mid-pass, which would make results depend on timing in the last bits.
    static let passLock = NSRecursiveLock()

    /// Runs `body` while holding the pass lock.
    public static func exclusive<R>(_ body: () throws -> R) rethrows -> R {
        passLock.lock()
        defer { passLock.unlock() }
        return try body()
    }

    public static func setThreadCount(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }

    /// OpenBLAS kernel families by the widest vector unit their sgemm uses: 0 = SSE-era
    /// fallbacks (what DYNAMIC_ARCH picks for a CPU it does not recognise), 1 = AVX,
    /// 2 = AVX2 + FMA, 3 = AVX-512. Names not listed (other architectures) are left alone.
    static let coreRanks: [String: Int] = [
        "prescott": 0, "core2": 0, "nehalem": 0, "katmai": 0, "coppermine": 0, "northwood": 0, "banias": 0,
        "atom": 0, "dunnington": 0, "penryn": 0, "opteron": 0, "opteron_sse3": 0, "barcelona": 0, "bobcat": 0,
        "athlon": 0, "sandybridge": 1, "bulldozer": 1, "piledriver": 1, "steamroller": 1,
        "haswell": 2, "zen": 2, "excavator": 2, "skylake": 2, "atomc3000": 0,
        "skylakex": 3, "cooperlake": 3, "sapphirerapids": 3,
    ]

    static func rank(ofCore name: String) -> Int? { coreRanks[name.lowercased()] }

    /// True for the SSE-era fallback kernels.
    public static func isGenericCore(_ name: String) -> Bool { rank(ofCore: name) == 0 }

    /// The `OPENBLAS_CORETYPE` that suits `cpu`: SkylakeX with AVX-512, Haswell with AVX2 + FMA.
    public static func preferredCoreType(for cpu: CPUFeatures) -> String? {
        if cpu.has("avx512f") && cpu.has("avx512bw") && cpu.has("avx512vl") && cpu.has("avx512dq") { return "SkylakeX" }
        if cpu.has("avx2") && cpu.has("fma") { return "Haswell" }
        return nil
    }

    /// A stronger kernel family than `core` for this CPU, if one exists: SkylakeX where
    /// `Prescott` or `Haswell` is loaded on an AVX-512 machine.
    public static func strongerCore(than core: String, cpu: CPUFeatures) -> String? {
        guard let wanted = preferredCoreType(for: cpu), let have = rank(ofCore: core),
              let want = rank(ofCore: wanted), have < want else { return nil }
        return wanted
    }

    /// What the start-up check decided.
    public enum CoreCheck: Equatable {
        /// The core is fine (or the CPU has nothing better).
        case ok(core: String)
        /// Re-execute with `OPENBLAS_CORETYPE` set to `coreType`; `replacing` is the value the
        /// environment had, if any (a weaker choice than the CPU supports).
        case reexec(coreType: String, replacing: String?)
        /// The core is the slow generic one and stays so (the user said `--no-blas-check`, or a
        /// re-exec did not take).
        case warn(core: String, suggested: String, reason: String)
    }

    /// Decides whether to re-execute. The loaded core is upgraded whenever the CPU supports a
    /// stronger family, even if `OPENBLAS_CORETYPE` asked for the weaker one (machine images
    /// set `Haswell` as a blanket workaround; on AVX-512 it halves sgemm speed): `--no-blas-check`
    /// (`skip`) keeps the loaded core. `NOPEKIT_BLAS_REEXEC` marks a process that is already
    /// the result of a re-exec, so a fix that does not take cannot loop.
    public static func check(core: String, cpu: CPUFeatures, environment: [String: String], skip: Bool) -> CoreCheck {
        guard let wanted = strongerCore(than: core, cpu: cpu) else { return .ok(core: core) }
        if environment["NOPEKIT_BLAS_REEXEC"] != nil {
            return isGenericCore(core)
                ? .warn(core: core, suggested: wanted, reason: "re-executing with OPENBLAS_CORETYPE=\(environment["OPENBLAS_CORETYPE"] ?? "?") did not change the core")
                : .ok(core: core)
        }
        if skip {
            return isGenericCore(core) ? .warn(core: core, suggested: wanted, reason: "--no-blas-check was given") : .ok(core: core)
        }
        return .reexec(coreType: wanted, replacing: environment["OPENBLAS_CORETYPE"])
    }

    /// OpenBLAS worker threads spin for about 2^28 cycles after each call before they sleep
    /// (`OPENBLAS_THREAD_TIMEOUT`, default 28). Between the many small products of a training
    /// step the spinning thread takes the core nopekit's own workers need: a step of the model
    /// organism measured 0.46 s with the default and 0.39 s with 4, and the long forward was not
    /// slower. Like the core type it is read when the library loads, so it is set by re-exec.
    public static let threadTimeout = "4"

    /// Variables the start-up re-exec should add to the environment.
    public static func environmentFixes(_ environment: [String: String]) -> [String: String] {
        environment["OPENBLAS_THREAD_TIMEOUT"] == nil ? ["OPENBLAS_THREAD_TIMEOUT": threadTimeout] : [:]
    }

    /// Measures single-precision GEMM throughput (C = A·Bᵀ, square `n`) for about `seconds`.
    /// Returns GFLOP/s over the timed calls after one warm-up call.
    public static func measureSgemm(n: Int = 1024, seconds: Double = 1.0) -> (gflops: Double, calls: Int) {
        var a = [Float](repeating: 0, count: n * n)
        var b = [Float](repeating: 0, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        for i in 0..<(n * n) {
            a[i] = Float((i * 7919) % 1000) / 1000 - 0.5
            b[i] = Float((i * 104729) % 1000) / 1000 - 0.5
        }
        func call() {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(n), Int32(n),
                        1, a, Int32(n), b, Int32(n), 0, &c, Int32(n))
        }
        call()
        var calls = 0
        let start = DispatchTime.now().uptimeNanoseconds
        var elapsed = 0.0
        repeat {
            call()
            calls += 1
            elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        } while elapsed < seconds
        return (2 * Double(n) * Double(n) * Double(n) * Double(calls) / elapsed / 1e9, calls)
    }
}

/// CPU model and feature flags, from `/proc/cpuinfo` (Linux).
public struct CPUFeatures: Equatable, Sendable {
    public var model: String
    public var flags: Set<String>
    public var logicalCores: Int

    public init(model: String, flags: Set<String>, logicalCores: Int) {
        self.model = model
        self.flags = flags
        self.logicalCores = logicalCores
    }

    public func has(_ flag: String) -> Bool { flags.contains(flag) }

    /// The flags that matter for nopekit's kernels, in a fixed order.
    public var relevantFlags: [String] {
        ["sse3", "avx", "fma", "f16c", "avx2", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx512_fp16", "amx_bf16"]
            .filter(has)
    }

    public static let current: CPUFeatures = {
        let text = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        return parse(cpuinfo: text)
    }()

    public static func parse(cpuinfo text: String) -> CPUFeatures {
        var model = "unknown"
        var flags = Set<String>()
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let key = parts[0].trimmingCharacters(in: .whitespaces)
            let value = parts[1].trimmingCharacters(in: .whitespaces)
            if key == "model name" && model == "unknown" { model = value }
            if key == "flags" && flags.isEmpty { flags = Set(value.split(separator: " ").map(String.init)) }
        }
        return CPUFeatures(model: model, flags: flags, logicalCores: ProcessInfo.processInfo.activeProcessorCount)
    }
}
