import COpenMPI
import DataParallel
import Foundation

/// `Collective` over Open MPI's `MPI_COMM_WORLD`, for processes started by `mpirun`.
///
/// `start()` initialises MPI only when the process was launched by `mpirun` (Open MPI sets
/// `OMPI_COMM_WORLD_SIZE`), so a plain run never touches MPI and behaves exactly as before.
/// Threads: MPI is called from the main thread only (`MPI_THREAD_FUNNELED`); BLAS and attention
/// threads inside a rank follow `--threads`.
public final class MPICollective: Collective {
    public let rank: Int
    public let size: Int

    private init(rank: Int, size: Int) {
        self.rank = rank
        self.size = size
    }

    /// Whether this process is one rank of an `mpirun` job.
    public static var launchedByMPIRun: Bool { ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] != nil }

    /// The job's collective: MPI's when launched by `mpirun`, else one process.
    public static func start() throws -> any Collective {
        guard launchedByMPIRun else { return SingleProcess() }
        if nk_mpi_initialized() == 0 {
            guard nk_mpi_init() == 0 else { throw MPIError.call("MPI_Init_thread") }
        }
        return MPICollective(rank: Int(nk_mpi_rank()), size: Int(nk_mpi_size()))
    }

    /// Ends MPI cleanly after a successful run.
    public func finish() { _ = nk_mpi_finalize() }

    public func allGather(_ local: [Float]) throws -> [[Float]] {
        var count = Int32(local.count)
        var counts = [Int32](repeating: 0, count: size)
        guard nk_mpi_allgather_int(&count, &counts) == 0 else { throw MPIError.call("MPI_Allgather") }
        var displacements = [Int32](repeating: 0, count: size)
        for r in 1..<max(1, size) { displacements[r] = displacements[r - 1] + counts[r - 1] }
        let total = Int(counts.reduce(0, +))
        var all = [Float](repeating: 0, count: total)
        let status = local.withUnsafeBufferPointer { send in
            all.withUnsafeMutableBufferPointer { recv in
                nk_mpi_allgatherv_float(send.baseAddress, count, recv.baseAddress, counts, displacements)
            }
        }
        guard status == 0 else { throw MPIError.call("MPI_Allgatherv") }
        return (0..<size).map { r in Array(all[Int(displacements[r])..<(Int(displacements[r]) + Int(counts[r]))]) }
    }

    public func abort(message: String) -> Never {
        FileHandle.standardError.write(Data("rank \(rank) of \(size): \(message.hasSuffix("\n") ? message : message + "\n")".utf8))
        nk_mpi_abort(1)
        exit(1)  // MPI_Abort does not return; this satisfies the type checker
    }
}

public enum MPIError: Error, CustomStringConvertible {
    case call(String)
    public var description: String {
        switch self {
        case .call(let name): return "\(name) failed; check that every rank runs the same nopekit build and that mpirun can reach every host"
        }
    }
}
