import Baking
import Checkpoints
import Dispatch
import Foundation

/// Bake throughput against `cp` of the same files, measured in one run: the two alternate, and
/// the fastest of each is kept. The bake writes through `fdatasync` (an output is published
/// only when it is on disk) while `cp` leaves dirty pages behind, so `cp` followed by
/// `sync -d` of the copies is timed too. The bake records the source's SHA-256: the first bake
/// hashes the source (a fresh, private checksum cache), the later ones find it remembered, as a
/// bake after `search` (which hashes the source for its table) does; both are reported.
public enum BakeBenchmark {
    public struct Result {
        public var bytes: Int
        public var bakeSeconds: Double
        /// The first bake, which hashes the source (nil with one repeat: then `bakeSeconds` is it).
        public var coldBakeSeconds: Double
        public var copySeconds: Double
        public var copySyncSeconds: Double
        public var changedBytes: Int
        /// Bake throughput over cp's (≥ 0.8 is the target in docs/benchmarks.md).
        public var ratioToCopy: Double { copySeconds / bakeSeconds }
        public var ratioToCopySync: Double { copySyncSeconds / bakeSeconds }
    }

    /// A seeded per-head table in [1, 2.5) for every layer of `config`.
    public static func table(for c: ModelConfig) -> TemperatureTable {
        var state: UInt64 = 0x5EED
        let scales: [[Float]?] = (0..<c.layers).map { _ in
            (0..<c.heads).map { _ in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return 1 + 1.5 * Float(state >> 40) / Float(1 << 24)
            }
        }
        return TemperatureTable(method: "bench", architecture: c.modelType, layers: c.layers, heads: c.heads, headDim: c.headDim, scales: scales)
    }

    public static func run(model: String, workdir: String, repeats: Int) throws -> Result {
        let checkpoint = try Checkpoint.open(model)
        let plan = try BakePlan.make(checkpoint, scales: .table(table(for: try checkpoint.requireConfig()), file: "bench"))
        let fm = FileManager.default
        try fm.createDirectory(atPath: workdir, withIntermediateDirectories: true)
        let name = (model as NSString).lastPathComponent
        var bake = Double.infinity, copy = Double.infinity, copySync = Double.infinity, cold = Double.infinity
        var report: BakeReport?
        let cacheFolder = "\(workdir)/checksum-cache"
        try? fm.removeItem(atPath: cacheFolder)
        defer { try? fm.removeItem(atPath: cacheFolder) }
        let cache = ChecksumCache(folder: cacheFolder)
        for i in 0..<repeats {
            let copied = "\(workdir)/cp-\(i)-\(name)", baked = "\(workdir)/baked-\(i)-\(name)"
            let t0 = now()
            try shell("/bin/cp", ["-r", model, copied])
            let t1 = now()
            let files = fm.fileExists(atPath: copied + "/config.json")
                ? try fm.contentsOfDirectory(atPath: copied).map { copied + "/" + $0 } : [copied]
            try shell("/bin/sync", ["-d"] + files)
            let t2 = now()
            report = try Baker.bake(plan, to: baked, checksumCache: cache)
            let t3 = now()
            copy = min(copy, t1 - t0)
            copySync = min(copySync, t2 - t0)
            if i == 0 { cold = t3 - t2 }
            if i > 0 || repeats == 1 { bake = min(bake, t3 - t2) }
            try fm.removeItem(atPath: copied)
            try fm.removeItem(atPath: baked)
        }
        return Result(bytes: report?.bytes ?? 0, bakeSeconds: bake, coldBakeSeconds: cold, copySeconds: copy, copySyncSeconds: copySync,
                      changedBytes: report?.changedBytes ?? 0)
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    static func shell(_ tool: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw FileError.cannotWrite(path: arguments.last ?? tool, reason: "\(tool) exited with \(process.terminationStatus)")
        }
    }
}
