#if canImport(Glibc)
import Glibc
#endif
import Checkpoints
import Foundation

/// Process entry: fix the OpenBLAS kernel choice first (it can only be changed before the
/// library loads, i.e. by re-executing), then parse the command line and run it.
@main
enum Entry {
    static func main() {
        BLASStartup.run(arguments: CommandLine.arguments)
        do {
            var command = try Nopekit.parseAsRoot()
            try command.run()
        } catch let error as FileError {
            if case .interrupted = error {
                // Ctrl-C / SIGTERM: the writer stopped and removed its partial output.
                Terminal.info("Error: \(error)")
                exit(130)
            }
            Nopekit.exit(withError: error)
        } catch {
            Nopekit.exit(withError: error)
        }
    }
}
