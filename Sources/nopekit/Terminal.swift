#if canImport(Glibc)
import Glibc
#endif
import Checkpoints
import Foundation

/// Human output goes to stderr (machine output to stdout behind `--json`). Colour only when
/// stderr is a terminal and `NO_COLOR` is unset.
enum Terminal {
    static let isTTY = isatty(2) != 0
    static let useColor = isTTY && ProcessInfo.processInfo.environment["NO_COLOR"] == nil

    /// Rank 0 of a data-parallel job speaks for it; the other ranks print nothing but errors.
    static func info(_ text: String) {
        guard Job.isLeader else { return }
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    static func note(_ text: String) { info("note: \(text)") }

    static func warn(_ text: String) {
        let label = useColor ? "\u{1B}[1;33mwarning:\u{1B}[0m" : "warning:"
        info("\(label) \(text)")
    }

    /// Writes machine output (JSON, tables meant for piping) to stdout.
    static func output(_ text: String) {
        guard Job.isLeader else { return }
        FileHandle.standardOutput.write(Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
    }

    /// `text` with control characters escaped, so names read from a file cannot drive the
    /// terminal (gguf_dump does the same).
    static func printable(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return text }
        return text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "\\u{\(String($0.value, radix: 16))}" : String($0) }.joined()
    }

    /// `text` with control characters escaped except line breaks and tabs (multi-line messages).
    static func printableKeepingLines(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false)
            .map { line in line.split(separator: "\t", omittingEmptySubsequences: false).map { printable(String($0)) }.joined(separator: "\t") }
            .joined(separator: "\n")
    }

    /// Left-aligned text columns, right-aligned where `rightAligned` says.
    static func table(_ rows: [[String]], header: [String], rightAligned: Set<Int> = []) -> String {
        let all = [header] + rows
        // Widths in Characters, each counted once; trailing blanks trimmed by hand (a regex
        // `\s+$` over a 600 KB cell took minutes: issue 13).
        let counts = all.map { $0.map(\.count) }
        let widths = header.indices.map { c in counts.map { $0[c] }.max() ?? 0 }
        func line(_ row: [String], _ count: [Int]) -> String {
            var text = row.enumerated().map { c, cell in
                let pad = String(repeating: " ", count: widths[c] - count[c])
                return rightAligned.contains(c) ? pad + cell : cell + pad
            }.joined(separator: "  ")
            while let last = text.unicodeScalars.last, last == " " || last == "\t" { text.unicodeScalars.removeLast() }
            return text
        }
        return zip(all, counts).map(line).joined(separator: "\n")
    }
}

/// A byte-based progress line with ETA on stderr, redrawn at most 10 times a second and only
/// when stderr is a terminal.
final class Progress {
    let label: String
    let start = Date()
    var lastDraw = Date.distantPast

    init(_ label: String) { self.label = label }

    func update(_ done: Int, _ total: Int) {
        guard Terminal.isTTY, total > 0, Job.isLeader else { return }
        let now = Date()
        guard done == total || now.timeIntervalSince(lastDraw) >= 0.1 else { return }
        lastDraw = now
        let elapsed = now.timeIntervalSince(start)
        let fraction = Double(done) / Double(total)
        let eta = fraction > 0 ? elapsed / fraction - elapsed : 0
        let rate = elapsed > 0 ? ByteSize.format(Int(Double(done) / elapsed)) + "/s" : "–"
        let text = String(format: "\r%@ %@ / %@ (%3.0f%%) %@ ETA %.0fs   ", label,
                          ByteSize.format(done), ByteSize.format(total), fraction * 100, rate, eta)
        FileHandle.standardError.write(Data(text.utf8))
        if done == total { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
