#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Process entry: fix the OpenBLAS kernel choice first (it can only be changed before the
/// library loads, i.e. by re-executing), then parse the command line.
@main
enum Entry {
    static func main() {
        BLASStartup.run(arguments: CommandLine.arguments)
        Nopekit.main()
    }
}
