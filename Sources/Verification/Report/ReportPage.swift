import Checkpoints
import Foundation

/// The report as one self-contained HTML page: the summary table, the equivalence check, and
/// the plots inline as SVG (perplexity against length, the passkey grid per model, the scale
/// table, scale against entropy). No scripts, no external resources: it opens from disk,
/// offline, and prints.
public struct ReportPage {
    public let report: VerificationReport

    public init(_ report: VerificationReport) { self.report = report }

    /// Plot name → SVG document, in page order.
    public var plots: [(name: String, svg: String)] {
        var out: [(String, String)] = [("perplexity", perplexityPlot)]
        for m in report.subjects where m.passkey != nil { out.append(("passkey-" + Self.slug(m.label), passkeyPlot(m))) }
        if let table = report.table {
            out.append(("scales", scalesPlot(table)))
            if let scatter = scaleEntropyPlot(table) { out.append(("scale-vs-entropy", scatter)) }
        }
        return out
    }

    static func slug(_ s: String) -> String { String(s.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "-" }) }

    var perplexityPlot: String {
        var series: [SVGPlot.Series] = []
        for m in report.subjects {
            for p in report.plan.protocols {
                let points = m.perplexity.filter { $0.method == p }.map { (x: Double($0.length), y: $0.perplexity) }
                series.append(SVGPlot.Series(name: "\(m.label) (\(p.rawValue))", points: points, dashed: p == .chunks))
            }
        }
        return SVGPlot.lineChart(title: "Perplexity by context length", xLabel: "context length (tokens)", yLabel: "perplexity",
                                 series: series, logX: true, logY: true,
                                 marker: report.plan.trainingLength.map { SVGPlot.Marker(x: Double($0), label: "training length") })
    }

    func passkeyPlot(_ m: Measurements) -> String {
        let a = m.passkey!
        return SVGPlot.heatmap(title: "Passkey retrieval: \(m.label)", xLabel: "needle depth", yLabel: "prompt length (tokens)",
                               columns: (0..<PasskeyGrid.depths).map { "\($0 * 10)%" }, rows: a.lengths.map(String.init),
                               values: a.grid.map { $0.map { Optional($0) } }, range: 0...1,
                               format: { String(format: "%.0f%%", 100 * $0) })
    }

    /// Scales around 1 (white): red sharpens a head, blue flattens it. The range spans the
    /// values and 1, never below 0 (a symmetric range would show negative multipliers).
    func scalesPlot(_ t: TemperatureTable) -> String {
        let values = t.scales.compactMap { $0 }.joined().map(Double.init)
        let range = min(1, values.min() ?? 1)...max(1, values.max() ?? 1)
        return SVGPlot.heatmap(title: "Scales s_h (\(t.method)); empty rows not searched", xLabel: "head", yLabel: "layer",
                               columns: (0..<t.heads).map(String.init), rows: (0..<t.layers).map(String.init),
                               values: t.scales.map { row in row.map { $0.map { Optional(Double($0)) } } ?? Array(repeating: nil, count: t.heads) },
                               range: range == 1...1 ? 0.5...1.5 : range, center: 1)
    }

    /// Each searched head's scale against its mean entropy at the longest measured length, for
    /// every subject: the heads whose attention had spread most got the largest scales.
    func scaleEntropyPlot(_ t: TemperatureTable) -> String? {
        guard let L = report.plan.lengths.max() else { return nil }
        let series = report.subjects.compactMap { m -> SVGPlot.Series? in
            guard let bits = m.entropy(length: L) else { return nil }
            var points: [(x: Double, y: Double)] = []
            for (l, row) in t.scales.enumerated() {
                guard let row, l < bits.count else { continue }
                for (h, s) in row.enumerated() where h < bits[l].count { points.append((Double(s), bits[l][h])) }
            }
            return SVGPlot.Series(name: m.label, points: points)
        }
        guard !series.isEmpty else { return nil }
        return SVGPlot.scatter(title: "Scale against attention entropy at \(L) tokens", xLabel: "scale s_h",
                               yLabel: "mean entropy (bits; uniform = \(String(format: "%.1f", log2(Double(L)))))", series: series)
    }

    public var html: String {
        let e = SVGPlot.escape
        var body = "<h1>nopekit verification</h1>\n"
        body += "<p>" + report.subjects.map { "<b>\(e($0.label))</b>: <code>\(e($0.source))</code>" }.joined(separator: "<br>\n") + "</p>\n"
        body += "<p>Data: <code>\(e(report.data))</code>. Passkey prompt: \(e(report.passkeyTemplate)).</p>\n"
        if let eq = report.equivalence {
            body += "<h2>Equivalence</h2>\n<p class=\"\(eq.passed ? "ok" : "fail")\">" + e(eq.summary) + "</p>\n"
        }
        let t = report.terminalTable
        body += "<h2>Summary</h2>\n<table>\n<tr>" + t.header.map { "<th>\(e($0))</th>" }.joined() + "</tr>\n"
        for row in t.rows { body += "<tr>" + row.map { "<td>\(e($0))</td>" }.joined() + "</tr>\n" }
        body += "</table>\n<p class=\"small\">Cells read " + report.subjects.map { e($0.label) }.joined(separator: " → ") + ".</p>\n"
        for note in report.notes { body += "<p class=\"note\">\(e(note))</p>\n" }
        body += "<h2>Plots</h2>\n"
        for (name, svg) in plots {
            body += "<figure id=\"\(name)\">\n" + Self.stripProlog(svg) + "\n</figure>\n"
        }
        return """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <title>nopekit verification</title>
            <style>
            body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
            table { border-collapse: collapse; margin: 1em 0; }
            th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; font-variant-numeric: tabular-nums; }
            th { background: #f3f3f3; }
            figure { display: inline-block; margin: 0.5em; vertical-align: top; }
            .ok { color: #1a7f37; } .fail { color: #c62828; font-weight: bold; } .small, .note { font-size: 90%; color: #555; }
            </style>
            </head>
            <body>
            \(body)</body>
            </html>

            """
    }

    /// An SVG document without its XML declaration, for inlining into HTML.
    static func stripProlog(_ svg: String) -> String {
        guard svg.hasPrefix("<?xml"), let end = svg.range(of: "?>") else { return svg }
        return String(svg[end.upperBound...]).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
