import Foundation
import Testing

enum MPIRun {
    static let path: URL? = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].map { URL(fileURLWithPath: $0) }
        .first { FileManager.default.isExecutableFile(atPath: $0.path) }
}

/// `mpirun -np 2 nopekit search|verify` against one process on the bundled organism: the
/// same table and the same report, bit for bit (every rank reduces the gathered per-item
/// results in item order); a failing rank ends the job with its message.
@Suite(.serialized, .enabled(if: MPIRun.path != nil, "needs Open MPI's mpirun (make deps installs openmpi-bin)"))
struct ScaleOutTests {
    static var mpirun: URL? { MPIRun.path }

    /// `nopekit arguments…` as `ranks` MPI processes (root allowed: CI runs as root).
    static func run(ranks: Int, _ arguments: [String]) throws -> CLIRunner.Result {
        try CLIRunner.run(["--allow-run-as-root", "--oversubscribe", "-np", "\(ranks)", CLIRunner.binary.path] + arguments,
                          timeout: 300, executable: mpirun!)
    }

    static let search = ["search", "fixtures/organism", "--data", "fixtures/verify/eval.txt", "--target-length", "1024",
                         "--schedule", "fast", "--steps", "4", "--threads", "1"]

    @Test func searchAcrossTwoRanksEqualsOneProcess() throws {
        let dir = try CLIRunner.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let one = try CLIRunner.run(Self.search + ["--out", dir + "/one.temps.json"])
        #expect(one.status == 0, "\(one.stderr)")
        let two = try Self.run(ranks: 2, Self.search + ["--out", dir + "/two.temps.json"])
        #expect(two.status == 0, "\(two.stderr)")
        // Rank 0 alone prints and writes.
        #expect(two.stderr.components(separatedBy: "wrote ").count == 2, "\(two.stderr)")
        let a = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/one.temps.json"))) as! [String: Any]
        let b = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/two.temps.json"))) as! [String: Any]
        #expect((a["scales"] as! NSArray) == (b["scales"] as! NSArray))
        let (sa, sb) = (a["search"] as! [String: Any], b["search"] as! [String: Any])
        for key in ["training_losses", "loss_before", "loss_after"] {
            #expect(NSDictionary(dictionary: ["v": sa[key]!]) == NSDictionary(dictionary: ["v": sb[key]!]), "\(key)")
        }
        #expect((sa["training_losses"] as! [Double]).count == 4)
    }

    @Test func verifyAcrossTwoRanksEqualsOneProcess() throws {
        let dir = try CLIRunner.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let args = ["verify", "fixtures/organism", "--temps", "fixtures/verify/organism.temps.json", "--data", "fixtures/verify/eval.txt",
                    "--lengths", "256,512", "--max-tokens", "2048", "--json", "--threads", "1"]
        let one = try CLIRunner.run(args)
        let two = try Self.run(ranks: 2, args)
        #expect(one.status == 0 && two.status == 0, "\(one.stderr)\n\(two.stderr)")
        func withoutTimes(_ text: String) throws -> NSDictionary {
            func strip(_ v: Any) -> Any {
                if let d = v as? [String: Any] { return d.filter { $0.key != "seconds" }.mapValues(strip) }
                if let a = v as? [Any] { return a.map(strip) }
                return v
            }
            return strip(try JSONSerialization.jsonObject(with: Data(text.utf8))) as! NSDictionary
        }
        #expect(try withoutTimes(one.stdout) == withoutTimes(two.stdout))
        #expect(one.stdout.contains("\"passkey\"") && one.stdout.contains("\"perplexity\""))
    }

    /// A rank that cannot open its model ends every rank, with its own message.
    @Test func aFailingRankEndsTheJobWithItsMessage() throws {
        let script = "if [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then m=/nonexistent/model; else m=fixtures/organism; fi; "
            + "exec \"$0\" search \"$m\" --data fixtures/verify/eval.txt --target-length 1024 --out \"${TMPDIR:-/tmp}/nopekit-mpi-fail-$$.temps.json\" --schedule fast --steps 4 --threads 1"
        let r = try CLIRunner.run(["--allow-run-as-root", "--oversubscribe", "-np", "2", "sh", "-c", script, CLIRunner.binary.path],
                                  timeout: 120, executable: Self.mpirun!)
        #expect(r.status != 0 && r.status != 9, "\(r.status) \(r.stderr)")
        #expect(r.stderr.contains("rank 1 of 2: Error: /nonexistent/model: cannot open"), "\(r.stderr)")
    }

    @Test func otherCommandsRefuseSeveralRanks() throws {
        let r = try Self.run(ranks: 2, ["inspect", "fixtures/organism"])
        #expect(r.status != 0 && r.stderr.contains("only search and verify run across MPI ranks"), "\(r.stderr)")
    }
}
