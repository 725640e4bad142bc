import Testing
@testable import Engine

@Suite struct BLASRuntimeTests {
    static let avx512 = CPUFeatures(model: "test", flags: ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq"], logicalCores: 2)
    static let avx2 = CPUFeatures(model: "test", flags: ["avx2", "fma"], logicalCores: 2)
    static let old = CPUFeatures(model: "test", flags: ["sse3"], logicalCores: 2)

    @Test func reexecutesFromAGenericCoreWithTheRightType() {
        #expect(BLASRuntime.check(core: "Prescott", cpu: Self.avx512, environment: [:], skip: false) == .reexec(coreType: "SkylakeX", replacing: nil))
        #expect(BLASRuntime.check(core: "Core2", cpu: Self.avx2, environment: [:], skip: false) == .reexec(coreType: "Haswell", replacing: nil))
        // A weaker family pinned in the environment (a blanket Haswell on an AVX-512 machine) is upgraded too.
        #expect(BLASRuntime.check(core: "Haswell", cpu: Self.avx512, environment: ["OPENBLAS_CORETYPE": "Haswell"], skip: false)
                == .reexec(coreType: "SkylakeX", replacing: "Haswell"))
    }

    @Test func leavesGoodOrUnimprovableCoresAlone() {
        #expect(BLASRuntime.check(core: "SkylakeX", cpu: Self.avx512, environment: [:], skip: false) == .ok(core: "SkylakeX"))
        #expect(BLASRuntime.check(core: "Cooperlake", cpu: Self.avx512, environment: [:], skip: false) == .ok(core: "Cooperlake"))
        #expect(BLASRuntime.check(core: "Haswell", cpu: Self.avx2, environment: [:], skip: false) == .ok(core: "Haswell"))
        #expect(BLASRuntime.check(core: "Haswell", cpu: Self.avx512, environment: [:], skip: true) == .ok(core: "Haswell"))
        #expect(BLASRuntime.check(core: "ARMV8", cpu: Self.avx512, environment: [:], skip: false) == .ok(core: "ARMV8"))
        #expect(BLASRuntime.check(core: "Prescott", cpu: Self.old, environment: [:], skip: false) == .ok(core: "Prescott"))
    }

    @Test func warnsInsteadOfLoopingOrOverridingTheUser() {
        guard case .warn = BLASRuntime.check(core: "Prescott", cpu: Self.avx512, environment: [:], skip: true) else {
            Issue.record("--no-blas-check must warn"); return
        }
        guard case .warn(_, _, let reason) = BLASRuntime.check(core: "Prescott", cpu: Self.avx512,
                                                             environment: ["OPENBLAS_CORETYPE": "SkylakeX", "NOPEKIT_BLAS_REEXEC": "1"], skip: false)
        else { Issue.record("a re-exec that did not take must warn"); return }
        #expect(reason.contains("did not change"))
        #expect(BLASRuntime.check(core: "Prescott", cpu: Self.avx512, environment: ["OPENBLAS_CORETYPE": "Prescott"], skip: false)
                == .reexec(coreType: "SkylakeX", replacing: "Prescott"))
    }

    @Test func suggestsAStrongerCoreOnlyWhereOneExists() {
        #expect(BLASRuntime.strongerCore(than: "Haswell", cpu: Self.avx512) == "SkylakeX")
        #expect(BLASRuntime.strongerCore(than: "Cooperlake", cpu: Self.avx512) == nil)
        #expect(BLASRuntime.strongerCore(than: "Haswell", cpu: Self.avx2) == nil)
    }

    @Test func parsesCPUInfo() {
        let text = "processor\t: 0\nmodel name\t: Test CPU @ 2.1GHz\nflags\t\t: fpu sse3 avx2 fma avx512f\n\nprocessor\t: 1\nmodel name\t: other\n"
        let cpu = CPUFeatures.parse(cpuinfo: text)
        #expect(cpu.model == "Test CPU @ 2.1GHz")
        #expect(cpu.has("avx512f") && cpu.has("fma") && !cpu.has("avx512bw"))
    }

    @Test func sgemmProbeMeasuresSomething() {
        let r = BLASRuntime.exclusive { BLASRuntime.measureSgemm(n: 64, seconds: 0.05) }
        #expect(r.calls > 0 && r.gflops > 0)
    }
}
