import DataParallel
import MPIRuntime

/// The data-parallel job this process belongs to: one process, unless `mpirun` started it.
/// Only `search` and `verify` split their work across ranks; rank 0 alone prints and writes.
enum Job {
    static var collective: any Collective = SingleProcess()
    static var isLeader: Bool { collective.isLeader }

    /// Commands that run across ranks.
    static func runsDistributed(_ command: Any) -> Bool { command is SearchCommand || command is Verify }
}
