#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Checkpoints
import Foundation
import MPIRuntime

/// Process entry: fix the OpenBLAS kernel choice first (it can only be changed before the
/// library loads, i.e. by re-executing), then parse the command line and run it.
@main
enum Entry {
    static func main() {
        BLASStartup.run(arguments: CommandLine.arguments)
        // A file-size limit (ulimit -f) then fails the write with EFBIG, which the writers
        // report and clean up after, instead of killing the process mid-file.
        signal(SIGXFSZ, SIG_IGN)
        do {
            Job.collective = try MPICollective.start()
            var command = try Nopekit.parseAsRoot()
            if Job.collective.size > 1 && !Job.runsDistributed(command) {
                throw ValidationError("only search and verify run across MPI ranks; run this command without mpirun (or with -np 1)")
            }
            try command.run()
            (Job.collective as? MPICollective)?.finish()
        } catch let error as FileError {
            if case .interrupted = error {
                // Ctrl-C / SIGTERM: the writer stopped and removed its partial output.
                Terminal.info("Error: \(error)")
                exit(130)
            }
            fail(error)
        } catch {
            fail(error)
        }
    }

    /// Exits with the parser's code and message for `error`; a failure's message has its
    /// control characters escaped, because it may quote names and values from a file (an ESC
    /// in a tensor name must not drive the terminal).
    static func fail(_ error: Error) -> Never {
        let code = Nopekit.exitCode(for: error)
        if code == .success { Nopekit.exit(withError: error) }   // --help, --version: printed as the parser does
        let message = Terminal.printableKeepingLines(Nopekit.fullMessage(for: error))
        // One failing rank of several ends the job, so no other rank waits in a collective.
        if Job.collective.size > 1 { Job.collective.abort(message: message) }
        FileHandle.standardError.write(Data((message.hasSuffix("\n") ? message : message + "\n").utf8))
        exit(code.rawValue)
    }
}
