import Checkpoints
import Foundation

/// Writes a report folder: report.html (self-contained, plots inline), verify.json, the CSV
/// files and each plot as its own .svg, assembled under a temporary name and renamed into place
/// when complete (an existing folder is never replaced).
public enum ReportWriter {
    public static func write(_ report: VerificationReport, to folder: String) throws {
        let output = try AtomicOutput(finalPath: folder, kind: .directory)
        do {
            func put(_ name: String, _ text: String) throws { try AtomicOutput.write(Array(text.utf8), to: output.temporaryChild(name)) }
            let page = ReportPage(report)
            try put("report.html", page.html)
            for (name, svg) in page.plots { try put(name + ".svg", svg) }
            try put("verify.json", JSONWriter.pretty(report.json, sortKeys: false) + "\n")
            for (name, text) in report.csvFiles { try put(name, text) }
            try output.commit()
        } catch {
            output.discard()
            throw error
        }
    }
}
