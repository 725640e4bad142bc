import Foundation

/// The plots of the verification report, drawn as standalone SVG documents.
///
/// Every function returns one complete `<svg>` element (no XML declaration, so it can be inlined
/// verbatim into report.html; UTF-8, the XML default, when written as a .svg file) with
/// `xmlns`, `width`, `height`, `viewBox`, `role="img"` and a `<title>` as its first child. Nothing
/// external is referenced: no scripts, no fonts (`font-family="sans-serif"`), no `id`s (several plots
/// share one HTML page), no gradients or patterns. Output is deterministic: the same input gives the
/// same bytes. Coordinates are written with at most one decimal (`%.1f`, a trailing `.0` dropped),
/// which `String(format:)` renders without a locale.
///
/// Elements carry classes so tests and CSS can find them:
///
/// | class | element | what |
/// |---|---|---|
/// | `background` | rect | white page |
/// | `title` | text | visible title (the `<title>` element holds the full, untruncated one) |
/// | `plot-area` | rect | frame of the data area: `x`, `y`, `width`, `height` are whole pixels |
/// | `grid` | line | grid line at a tick |
/// | `tick-x`, `tick-y` | text | tick labels (heatmap: column and row labels) |
/// | `axis-label` | text | x and y axis labels |
/// | `series` | g | one series: a `line` path (line charts) and `point` circles |
/// | `marker`, `marker-label` | line, text | the vertical marker and its label |
/// | `legend`, `legend-label` | g, text | the legend and its entries' names |
/// | `cell` | rect | one heatmap cell, with a `<title>` tooltip "row / column: value" |
/// | `cell-label` | text | a cell's value |
/// | `na`, `na-label` | line, text | the diagonal stroke and "n/a" text of an empty cell |
/// | `colorbar`, `colorbar-label` | rect, text | colour bar slices and their labels |
/// | `no-data` | text | shown instead of a plot when there is nothing to draw |
///
/// Axis ranges (what the tests rely on): the x range spans the drawable points (and the marker),
/// the y range spans the drawable points; both are padded by 5 % of their span on each side and are
/// used as they are (not widened to the next tick). A zero span is padded by 10 % of the value on
/// each side (±1 when the value is 0). Log axes apply the same rule to log2 x / log10 y (5 % of the
/// log span, or ±0.5 log units for a single value). Sizes below 200 × 140 are raised to that.
public enum SVGPlot {

    // MARK: - Public types

    /// One line (or point cloud) of a chart.
    public struct Series {
        public var name: String
        /// Drawn in the given order. A point with a non-finite coordinate (or a non-positive one on a
        /// log axis) is skipped and breaks the line there (a gap).
        public var points: [(x: Double, y: Double)]
        /// Any CSS colour; nil takes the next unused colour of `palette` (series with an explicit
        /// colour do not advance it).
        public var color: String?
        /// Dashed line (line charts only; scatter plots ignore it).
        public var dashed: Bool

        public init(name: String, points: [(x: Double, y: Double)], color: String? = nil, dashed: Bool = false) {
            self.name = name
            self.points = points
            self.color = color
            self.dashed = dashed
        }
    }

    /// A vertical dashed line at `x` with a label above the data area, e.g. the training length.
    public struct Marker {
        public var x: Double
        public var label: String

        public init(x: Double, label: String) {
            self.x = x
            self.label = label
        }
    }

    /// Okabe–Ito's colour-blind-safe palette, ordered so that the first colours read well as thin
    /// lines on white (the yellow comes last).
    public static let palette: [String] = [
        "#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000", "#F0E442",
    ]

    // MARK: - Charts

    /// Lines with point dots, legend, axes with "nice" ticks (1-2-5 steps), axis labels and title.
    ///
    /// - `logX`: base-2 log axis with ticks at the powers of two inside the range (256, 512, 1024 …;
    ///   every k-th exponent when there are many; plain 1-2-5 ticks when the range holds fewer
    ///   than two powers).
    /// - `logY`: base-10 log axis, ticks at 1, 2, 5 × 10ᵏ over at most three decades, 10ᵏ beyond.
    /// - `marker`: a vertical dashed line with its label; its x is kept inside the x range.
    ///
    /// The legend goes to the right of the data area when its longest name fits in 30 % of the width
    /// and all entries fit vertically, below it otherwise; it is left out when every name is empty.
    /// With no drawable point at all the result is a valid SVG saying "no data".
    public static func lineChart(title: String, xLabel: String, yLabel: String, series: [Series],
                                 logX: Bool = false, logY: Bool = false, marker: Marker? = nil,
                                 width: Int = 560, height: Int = 340) -> String {
        xyChart(title: title, xLabel: xLabel, yLabel: yLabel, series: series,
                xScale: logX ? .log2 : .linear, yScale: logY ? .log10 : .linear,
                marker: marker, width: width, height: height, drawLines: true)
    }

    /// Points only (no lines), one colour per series, legend; optional marker as in `lineChart`.
    /// Layout, ranges and ticks are those of `lineChart` with linear axes.
    public static func scatter(title: String, xLabel: String, yLabel: String, series: [Series],
                               marker: Marker? = nil, width: Int = 560, height: Int = 340) -> String {
        xyChart(title: title, xLabel: xLabel, yLabel: yLabel, series: series,
                xScale: .linear, yScale: .linear,
                marker: marker, width: width, height: height, drawLines: false)
    }

    /// A matrix as coloured cells: `values[r][c]` is row `r` (top to bottom) and column `c` (left to
    /// right). The grid is `values.count` rows by the longest row's columns; short rows are padded
    /// with empty cells, missing labels are blank, extra labels are ignored.
    ///
    /// Each cell is labelled with `format(value)` when every label fits: cells at least 28 px wide and
    /// 13 px tall, and the widest label narrower than a cell; the text is black or white, whichever
    /// contrasts more with the fill. nil or non-finite values are empty cells: light grey, a diagonal
    /// stroke, and "n/a" when the cell is at least 24 px wide.
    ///
    /// Colours: sequential white → dark blue (ColorBrewer Blues) over `range`, or, with `center`,
    /// diverging: blue below the centre, exactly white (#ffffff) at it, red above (ColorBrewer RdBu),
    /// each side scaled to its end of the range. Values outside the range take the end colour.
    /// `range` defaults to the data's min…max; with a `center` it defaults to the symmetric range
    /// center ± (largest distance of a value from it), so equal distances get equal intensity. A
    /// sequential range of zero width paints every value with the middle colour. A colour bar at the
    /// right shows the range with `format(min)` and `format(max)` (and the centre when there is room).
    ///
    /// Column labels are thinned (every k-th) when they would overlap, row labels when rows are
    /// shorter than 12 px. `height` nil: rows are as tall as cells are wide, kept within 18…36 px.
    public static func heatmap(title: String, xLabel: String, yLabel: String, columns: [String], rows: [String],
                               values: [[Double?]], range: ClosedRange<Double>? = nil, center: Double? = nil,
                               format: (Double) -> String = { String(format: "%.2f", $0) },
                               width: Int = 560, height: Int? = nil) -> String {
        let nRows = values.count
        let nCols = values.map(\.count).max() ?? 0
        let pageW = max(width, 200)
        guard nRows > 0, nCols > 0 else {
            return noData(title: title, width: pageW, height: max(height ?? 200, 140))
        }
        let wd = Double(pageW)

        // Cells: the value (nil when empty) and its label.
        let cells: [[Double?]] = values.map { row in
            (0..<nCols).map { c in c < row.count ? row[c].flatMap { $0.isFinite ? $0 : nil } : nil }
        }
        let finite = cells.flatMap { $0.compactMap { $0 } }
        let scale = ColorScale(range: range, center: center, data: finite)
        let cellText = cells.map { row in row.map { $0.map(format) } }

        // Labels and the widths they need.
        let rowNames = (0..<nRows).map { truncate($0 < rows.count ? rows[$0] : "", maxWidth: wd * 0.3) }
        let colNames = (0..<nCols).map { truncate($0 < columns.count ? columns[$0] : "", maxWidth: 90) }
        let loText = format(scale.lo), hiText = format(scale.hi)
        let centerText = scale.center.map(format)
        let barLabelW = ([loText, hiText] + (centerText.map { [$0] } ?? [])).map { textWidth($0) }.max() ?? 0

        // Layout.
        let top = title.isEmpty ? 14.0 : 36.0
        let left = (10 + (yLabel.isEmpty ? 0 : 18) + (rowNames.map { textWidth($0) }.max() ?? 0) + 6).rounded()
        let barW = 12.0
        let right = 14 + barW + 4 + barLabelW + 10
        let plotW = max((wd - left - right).rounded(), Double(nCols))
        let cellW = plotW / Double(nCols)
        let bottom = 22 + (xLabel.isEmpty ? 0 : 18) + 8.0
        let cellH: Double
        let pageH: Int
        if let height {
            pageH = max(height, 140)
            cellH = max((Double(pageH) - top - bottom) / Double(nRows), 1)
        } else {
            cellH = min(max(cellW, 18), 36)
            pageH = Int((top + cellH * Double(nRows) + bottom).rounded(.up))
        }
        let plotH = cellH * Double(nRows)
        let cellFont = 10.0
        let widestCellText = cellText.flatMap { $0.compactMap { $0 } }.map { textWidth($0, size: cellFont) }.max() ?? 0
        let showCellText = cellW >= 28 && cellH >= 13 && widestCellText <= cellW - 4
        let showNA = cellW >= 24 && cellH >= 13
        let colStep = max(1, Int(((colNames.map { textWidth($0) }.max() ?? 0) + 4) / cellW) + 1)
        let rowStep = max(1, Int((12 / cellH).rounded(.up)))

        var svg = Writer(title: title, width: pageW, height: pageH)
        svg.title(title, width: wd)

        // Cells, each with a tooltip.
        for r in 0..<nRows {
            for c in 0..<nCols {
                let x = left + Double(c) * cellW, y = top + Double(r) * cellH
                let rowName = rowNames[r].isEmpty ? "row \(r)" : rowNames[r]
                let colName = colNames[c].isEmpty ? "column \(c)" : colNames[c]
                let tooltip = "\(rowName) / \(colName): \(cellText[r][c] ?? "n/a")"
                let fill = cells[r][c].map { scale.color($0) } ?? RGB(0xEE, 0xEE, 0xEE)
                svg.element("rect", [("class", "cell"), ("x", num(x)), ("y", num(y)),
                                     ("width", num(cellW)), ("height", num(cellH)),
                                     ("fill", fill.hex), ("stroke", "#ffffff"), ("stroke-width", "0.5")],
                            tooltip: tooltip)
                let cx = x + cellW / 2, baseline = y + cellH / 2 + cellFont * 0.35
                if let text = cellText[r][c] {
                    if showCellText {
                        svg.text(text, x: cx, y: baseline, anchor: "middle", cls: "cell-label",
                                 extra: [("font-size", num(cellFont)), ("fill", fill.contrastingText)])
                    }
                } else {
                    svg.element("line", [("class", "na"), ("x1", num(x)), ("y1", num(y + cellH)),
                                         ("x2", num(x + cellW)), ("y2", num(y)),
                                         ("stroke", "#c8c8c8"), ("stroke-width", "1")])
                    if showNA {
                        svg.text("n/a", x: cx, y: baseline, anchor: "middle", cls: "na-label",
                                 extra: [("font-size", num(cellFont)), ("fill", "#666666")])
                    }
                }
            }
        }
        svg.element("rect", [("class", "plot-area"), ("x", num(left)), ("y", num(top)), ("width", num(plotW)),
                             ("height", num(plotH)), ("fill", "none"), ("stroke", "#888888"), ("stroke-width", "0.75")])

        // Row and column labels, axis labels.
        for r in stride(from: 0, to: nRows, by: rowStep) where !rowNames[r].isEmpty {
            svg.text(rowNames[r], x: left - 6, y: top + (Double(r) + 0.5) * cellH + 4, anchor: "end", cls: "tick-y")
        }
        for c in stride(from: 0, to: nCols, by: colStep) where !colNames[c].isEmpty {
            svg.text(colNames[c], x: left + (Double(c) + 0.5) * cellW, y: top + plotH + 15, anchor: "middle", cls: "tick-x")
        }
        svg.axisLabels(x: xLabel, y: yLabel, frame: Frame(x: left, y: top, width: plotW, height: plotH), xLabelY: top + plotH + 33)

        // Colour bar: slices from max (top) to min (bottom).
        let barX = left + plotW + 14, barH = min(max(plotH, 40), 220)
        let slices = 40
        let sliceH = barH / Double(slices)
        for i in 0..<slices {
            let v = scale.hi - (Double(i) + 0.5) / Double(slices) * (scale.hi - scale.lo)
            // Slices overlap slightly so no hairline gaps show between them.
            svg.element("rect", [("class", "colorbar"), ("x", num(barX)), ("y", num(top + Double(i) * sliceH)),
                                 ("width", num(barW)), ("height", num(sliceH + (i < slices - 1 ? 0.4 : 0))),
                                 ("fill", scale.color(v).hex)])
        }
        svg.element("rect", [("x", num(barX)), ("y", num(top)), ("width", num(barW)), ("height", num(barH)),
                             ("fill", "none"), ("stroke", "#888888"), ("stroke-width", "0.5")])
        let labelX = barX + barW + 4
        svg.text(hiText, x: labelX, y: top + 8, cls: "colorbar-label")
        svg.text(loText, x: labelX, y: top + barH, cls: "colorbar-label")
        if let c = scale.center, let centerText, scale.hi > scale.lo, c > scale.lo, c < scale.hi {
            let cy = top + (scale.hi - c) / (scale.hi - scale.lo) * barH
            if cy - top >= 16, top + barH - cy >= 16 {
                svg.element("line", [("x1", num(barX + barW)), ("y1", num(cy)), ("x2", num(barX + barW + 3)),
                                     ("y2", num(cy)), ("stroke", "#555555")])
                svg.text(centerText, x: labelX, y: cy + 4, cls: "colorbar-label")
            }
        }
        return svg.finish()
    }

    // MARK: - Escaping

    /// Escapes & < > " ' for XML text and attribute values. Characters XML 1.0 forbids (controls
    /// other than tab, newline and carriage return; U+FFFE, U+FFFF) become U+FFFD.
    public static func escape(_ s: String) -> String {
        var out = String.UnicodeScalarView()
        for u in s.unicodeScalars {
            switch u {
            case "&": out.append(contentsOf: "&amp;".unicodeScalars)
            case "<": out.append(contentsOf: "&lt;".unicodeScalars)
            case ">": out.append(contentsOf: "&gt;".unicodeScalars)
            case "\"": out.append(contentsOf: "&quot;".unicodeScalars)
            case "'": out.append(contentsOf: "&apos;".unicodeScalars)
            case "\t", "\n", "\r": out.append(u)
            default:
                out.append(u.value < 0x20 || u.value == 0xFFFE || u.value == 0xFFFF ? "\u{FFFD}" : u)
            }
        }
        return String(out)
    }
}

// MARK: - Line charts and scatter plots

extension SVGPlot {
    /// Shared body of `lineChart` and `scatter`.
    static func xyChart(title: String, xLabel: String, yLabel: String, series: [Series],
                        xScale: Scale, yScale: Scale, marker: Marker?,
                        width: Int, height: Int, drawLines: Bool) -> String {
        let pageW = max(width, 200), pageH = max(height, 140)
        let wd = Double(pageW), ht = Double(pageH)

        // Drawable points per series; nil marks a gap.
        let cleaned: [[(x: Double, y: Double)?]] = series.map { s in
            s.points.map { p in xScale.transform(p.x) != nil && yScale.transform(p.y) != nil ? p : nil }
        }
        let drawable = cleaned.flatMap { $0.compactMap { $0 } }
        guard !drawable.isEmpty else { return noData(title: title, width: pageW, height: pageH) }
        let colors = assignColors(series)
        let marker = marker.flatMap { xScale.transform($0.x) != nil ? $0 : nil }

        // Legend: right of the data area when it fits, below it otherwise.
        let showLegend = series.contains { !$0.name.isEmpty }
        let swatchW = 22.0, rowH = 16.0
        let rightLegendW = (series.map { textWidth($0.name) }.max() ?? 0) + swatchW + 6 + 8
        let top = (title.isEmpty ? 14.0 : 36.0) + (marker != nil ? 14 : 0)
        let xLabelH = xLabel.isEmpty ? 0.0 : 18
        let baseBottom = 24 + xLabelH + 8
        let legendOnRight = showLegend && rightLegendW <= wd * 0.3
            && Double(series.count) * rowH <= ht - top - baseBottom
        var belowRows: [[(index: Int, x: Double, name: String)]] = []
        if showLegend && !legendOnRight {
            let available = wd - 24
            var row: [(index: Int, x: Double, name: String)] = []
            var x = 0.0
            for (i, s) in series.enumerated() {
                let name = truncate(s.name, maxWidth: available - swatchW - 20)
                let entryW = swatchW + 6 + textWidth(name) + 14
                if x + entryW > available && !row.isEmpty {
                    belowRows.append(row)
                    row = []
                    x = 0
                }
                row.append((i, x, name))
                x += entryW
            }
            belowRows.append(row)
        }
        let bottom = baseBottom + (belowRows.isEmpty ? 0 : Double(belowRows.count) * rowH + 6)

        // Axes: y first (its labels set the left margin), then x.
        let plotH = max((ht - top - bottom).rounded(), 30)
        let yAxis = Axis.fit(drawable.map(\.y), scale: yScale)
        let yTicks = yAxis.ticks(target: max(2, Int(plotH / 45)))
        let left = (10 + (yLabel.isEmpty ? 0 : 18) + (yTicks.map { textWidth($0.label) }.max() ?? 0) + 8).rounded()
        let xAxis = Axis.fit(drawable.map(\.x) + (marker.map { [$0.x] } ?? []), scale: xScale)
        // Room on the right for half of the last x tick label (estimated from a first tick pass).
        let draftTicks = xAxis.ticks(target: max(2, Int((wd - left - 18) / 80)))
        let halfLabel = (draftTicks.last.map { textWidth($0.label) } ?? 0) / 2 + 4
        let right = legendOnRight ? rightLegendW + 14 : max(18, halfLabel)
        let plotW = max((wd - left - right).rounded(), 30)
        let frame = Frame(x: left, y: top, width: plotW, height: plotH)
        // powers of two are few: ask for many and let `thinned` drop what would overlap
        let xTicks = thinned(xAxis.ticks(target: max(2, Int(plotW / (xAxis.scale == .log2 ? 36 : 80)))), length: plotW)

        var svg = Writer(title: title, width: pageW, height: pageH)
        svg.title(title, width: wd)

        // Grid, frame, tick labels, axis labels.
        for t in xTicks {
            guard let x = frame.px(xAxis, t.value) else { continue }
            svg.element("line", [("class", "grid"), ("x1", num(x)), ("y1", num(top)), ("x2", num(x)),
                                 ("y2", num(top + plotH)), ("stroke", "#e6e6e6"), ("stroke-width", "1")])
            svg.text(t.label, x: x, y: top + plotH + 15, anchor: "middle", cls: "tick-x")
        }
        for t in yTicks {
            guard let y = frame.py(yAxis, t.value) else { continue }
            svg.element("line", [("class", "grid"), ("x1", num(left)), ("y1", num(y)), ("x2", num(left + plotW)),
                                 ("y2", num(y)), ("stroke", "#e6e6e6"), ("stroke-width", "1")])
            svg.text(t.label, x: left - 6, y: y + 4, anchor: "end", cls: "tick-y")
        }
        svg.element("rect", [("class", "plot-area"), ("x", num(left)), ("y", num(top)), ("width", num(plotW)),
                             ("height", num(plotH)), ("fill", "none"), ("stroke", "#888888"), ("stroke-width", "1")])
        svg.axisLabels(x: xLabel, y: yLabel, frame: frame, xLabelY: top + plotH + 33)

        // Marker: dashed line, label centred above the data area (kept inside the page).
        if let marker, let mx = frame.px(xAxis, marker.x) {
            svg.element("line", [("class", "marker"), ("x1", num(mx)), ("y1", num(top)), ("x2", num(mx)),
                                 ("y2", num(top + plotH)), ("stroke", "#555555"), ("stroke-width", "1.2"),
                                 ("stroke-dasharray", "4 3")])
            let half = textWidth(marker.label, size: 10) / 2
            let lx = min(max(mx, half + 4), wd - half - 4)
            svg.text(marker.label, x: lx, y: top - 5, anchor: "middle", cls: "marker-label",
                     extra: [("font-size", "10"), ("fill", "#333333")])
        }

        // Series: one path per unbroken run, then the dots on top.
        let dotRadius = drawable.count > 200 ? 1.5 : (drawLines ? 2.5 : 3)
        for (i, s) in series.enumerated() {
            let pixels: [(x: Double, y: Double, point: (x: Double, y: Double))?] = cleaned[i].map { p in
                guard let p, let x = frame.px(xAxis, p.x), let y = frame.py(yAxis, p.y) else { return nil }
                return (x, y, p)
            }
            svg.open("g", [("class", "series")])
            if drawLines {
                var d: [String] = []
                var run: [String] = []
                for p in pixels + [nil] {
                    if let p {
                        run.append("\(run.isEmpty ? "M" : "L")\(num(p.x)) \(num(p.y))")
                    } else {
                        if run.count > 1 { d += run }
                        run = []
                    }
                }
                if !d.isEmpty {
                    var attrs = [("class", "line"), ("d", d.joined(separator: " ")), ("fill", "none"),
                                 ("stroke", colors[i]), ("stroke-width", "1.8"), ("stroke-linejoin", "round")]
                    if s.dashed { attrs.append(("stroke-dasharray", "6 4")) }
                    svg.element("path", attrs)
                }
            }
            for case let p? in pixels {
                let tip = "\(s.name.isEmpty ? "" : s.name + ": ")x = \(formatTick(p.point.x)), y = \(formatTick(p.point.y))"
                svg.element("circle", [("class", "point"), ("cx", num(p.x)), ("cy", num(p.y)),
                                       ("r", num(dotRadius)), ("fill", colors[i])], tooltip: tip)
            }
            svg.close("g")
        }

        // Legend.
        if showLegend {
            var entries: [(index: Int, x: Double, y: Double, name: String)] = []
            if legendOnRight {
                for (i, s) in series.enumerated() {
                    entries.append((i, left + plotW + 14, top + 8 + Double(i) * rowH, s.name))
                }
            } else {
                let y0 = top + plotH + baseBottom + 4
                for (r, row) in belowRows.enumerated() {
                    for e in row { entries.append((e.index, 12 + e.x, y0 + Double(r) * rowH, e.name)) }
                }
            }
            svg.open("g", [("class", "legend")])
            for e in entries {
                let s = series[e.index]
                if drawLines {
                    var attrs = [("x1", num(e.x)), ("y1", num(e.y)), ("x2", num(e.x + swatchW)), ("y2", num(e.y)),
                                 ("stroke", colors[e.index]), ("stroke-width", "1.8")]
                    if s.dashed { attrs.append(("stroke-dasharray", "6 4")) }
                    svg.element("line", attrs)
                }
                svg.element("circle", [("cx", num(e.x + swatchW / 2)), ("cy", num(e.y)), ("r", num(drawLines ? 2.5 : 3)),
                                       ("fill", colors[e.index])])
                svg.text(e.name, x: e.x + swatchW + 6, y: e.y + 4, cls: "legend-label")
            }
            svg.close("g")
        }
        return svg.finish()
    }

    /// A valid, framed SVG that says "no data".
    static func noData(title: String, width: Int, height: Int) -> String {
        var svg = Writer(title: title, width: width, height: height)
        svg.title(title, width: Double(width))
        svg.text("no data", x: Double(width) / 2, y: Double(height) / 2 + 5, anchor: "middle", cls: "no-data",
                 extra: [("font-size", "14"), ("fill", "#888888")])
        return svg.finish()
    }

    /// Explicit colours stay; the others take the palette in order.
    static func assignColors(_ series: [Series]) -> [String] {
        var next = 0
        return series.map { s in
            if let c = s.color { return c }
            defer { next += 1 }
            return palette[next % palette.count]
        }
    }

    /// Keeps every k-th tick so that labels do not overlap along `length` pixels.
    static func thinned(_ ticks: [(value: Double, label: String)], length: Double) -> [(value: Double, label: String)] {
        guard ticks.count > 2 else { return ticks }
        let widest = ticks.map { textWidth($0.label) }.max() ?? 0
        let step = Int(((widest + 10) * Double(ticks.count - 1) / length).rounded(.up))
        guard step > 1 else { return ticks }
        return ticks.enumerated().filter { $0.offset % step == 0 }.map(\.element)
    }
}

// MARK: - Axes

extension SVGPlot {
    /// How data values map onto an axis.
    enum Scale {
        case linear, log2, log10

        /// The value in axis units, nil when it cannot be drawn (non-finite, or ≤ 0 on a log axis).
        func transform(_ v: Double) -> Double? {
            guard v.isFinite else { return nil }
            switch self {
            case .linear: return v
            case .log2: return v > 0 ? Foundation.log2(v) : nil
            case .log10: return v > 0 ? Foundation.log10(v) : nil
            }
        }

        func inverse(_ t: Double) -> Double {
            switch self {
            case .linear: return t
            case .log2: return pow(2, t)
            case .log10: return pow(10, t)
            }
        }
    }

    /// An axis range `lo…hi` in axis units (log2 or log10 of the value on log axes).
    struct Axis {
        let scale: Scale
        let lo: Double
        let hi: Double

        /// The padded range of `values` (see the padding rule in the type's documentation).
        static func fit(_ values: [Double], scale: Scale) -> Axis {
            let t = values.compactMap(scale.transform)
            guard let mn = t.min(), let mx = t.max() else { return Axis(scale: scale, lo: 0, hi: 1) }
            let span = mx - mn
            let isLinear: Bool
            if case .linear = scale { isLinear = true } else { isLinear = false }
            let distinct = isLinear ? span > 1e-9 * max(abs(mn), abs(mx)) : span > 1e-9
            if distinct { return Axis(scale: scale, lo: mn - 0.05 * span, hi: mx + 0.05 * span) }
            let mid = (mn + mx) / 2
            let pad = isLinear ? (mid == 0 ? 1 : abs(mid) * 0.1) : 0.5
            return Axis(scale: scale, lo: mid - pad, hi: mid + pad)
        }

        /// Position of `v` along the axis, 0 at `lo` and 1 at `hi`.
        func fraction(_ v: Double) -> Double? {
            scale.transform(v).map { ($0 - lo) / (hi - lo) }
        }

        /// About `target` ticks inside the range, with their labels.
        func ticks(target: Int) -> [(value: Double, label: String)] {
            var values: [Double]
            let inside = { (v: Double) -> Bool in
                guard let t = scale.transform(v) else { return false }
                return t >= lo - 1e-9 && t <= hi + 1e-9
            }
            switch scale {
            case .linear:
                values = SVGPlot.linearTicks(lo, hi, target: target)
            case .log2:
                values = SVGPlot.powerTicks(base: 2, lo: lo, hi: hi, multipliers: [1], target: target).filter(inside)
            case .log10:
                let mults: [Double] = hi - lo <= 3 ? [1, 2, 5] : [1]
                values = SVGPlot.powerTicks(base: 10, lo: lo, hi: hi, multipliers: mults, target: target).filter(inside)
                if values.count > target + 1 {
                    values = SVGPlot.powerTicks(base: 10, lo: lo, hi: hi, multipliers: [1], target: target).filter(inside)
                }
            }
            if !isLinear && values.count < 2 {
                // Too narrow for powers: plain 1-2-5 ticks placed on the log scale.
                values = SVGPlot.linearTicks(scale.inverse(lo), scale.inverse(hi), target: target).filter(inside)
            }
            return values.map { ($0, SVGPlot.formatTick($0)) }
        }

        private var isLinear: Bool {
            if case .linear = scale { return true }
            return false
        }
    }

    /// The data area in pixels, and the mapping of values into it.
    struct Frame {
        let x: Double, y: Double, width: Double, height: Double

        func px(_ axis: Axis, _ v: Double) -> Double? {
            axis.fraction(v).map { x + $0 * width }
        }

        func py(_ axis: Axis, _ v: Double) -> Double? {
            axis.fraction(v).map { y + height - $0 * height }
        }
    }

    /// Multiples of a 1, 2 or 5 × 10ᵏ step inside `lo…hi`: the nice step nearest (geometrically) to
    /// span / `target`. Values are computed as i × step so they stay on the step exactly enough for
    /// `formatTick`.
    static func linearTicks(_ lo: Double, _ hi: Double, target: Int) -> [Double] {
        let span = hi - lo
        guard span > 0, span.isFinite else { return lo.isFinite ? [lo] : [] }
        let raw = span / Double(max(target, 1))
        let e = floor(Foundation.log10(raw))
        let m = raw / pow(10, e)
        let nice: Double = m < 1.414 ? 1 : m < 3.162 ? 2 : m < 7.071 ? 5 : 10
        // Dividing by 10^-e keeps 0.1, 0.2 … as close to the decimal as a Double gets.
        let value = { (i: Double) -> Double in e >= 0 ? i * nice * pow(10, e) : i * nice / pow(10, -e) }
        let step = value(1)
        let first = (lo / step - 1e-9).rounded(.up), last = (hi / step + 1e-9).rounded(.down)
        guard first <= last, last - first <= 1000 else { return [] }
        return stride(from: first, through: last, by: 1).map(value)
    }

    /// m × baseᵏ for every multiplier m and every k around `lo…hi` (axis units); plain powers are
    /// thinned to every 2nd, 3rd … exponent when there are more than `target + 1` of them.
    static func powerTicks(base: Double, lo: Double, hi: Double, multipliers: [Double], target: Int) -> [Double] {
        guard lo.isFinite, hi.isFinite, hi - lo < 4000 else { return [] }
        let kLo = Int(lo.rounded(.down)), kHi = Int(hi.rounded(.up))
        let count = kHi - kLo + 1
        let every = multipliers == [1] && count > target + 1 ? Int((Double(count) / Double(max(target, 1))).rounded(.up)) : 1
        var out: [Double] = []
        for k in kLo...kHi where ((k % every) + every) % every == 0 {
            let p = k >= 0 ? pow(base, Double(k)) : 1 / pow(base, Double(-k))
            for m in multipliers { out.append(m * p) }
        }
        return out
    }

    /// A short tick label: integers as integers ("1024"), others with up to six significant digits
    /// and no trailing zeros ("2.5", "0.001").
    static func formatTick(_ v: Double) -> String {
        if v == 0 { return "0" }
        if v == v.rounded(), abs(v) < 1e15 { return String(format: "%.0f", v) }
        return String(format: "%.6g", v)
    }
}

// MARK: - Colours

extension SVGPlot {
    /// An sRGB colour, channels 0…255.
    struct RGB {
        var r: Double, g: Double, b: Double

        init(_ r: Double, _ g: Double, _ b: Double) {
            self.r = r
            self.g = g
            self.b = b
        }

        init(hex: Int) {
            self.init(Double(hex >> 16 & 0xFF), Double(hex >> 8 & 0xFF), Double(hex & 0xFF))
        }

        /// "#rrggbb", lower case.
        var hex: String {
            let c = { (v: Double) -> Int in Int(min(max(v, 0), 255).rounded()) }
            return String(format: "#%02x%02x%02x", c(r), c(g), c(b))
        }

        /// WCAG relative luminance.
        var luminance: Double {
            func linear(_ v: Double) -> Double {
                let s = v / 255
                return s <= 0.04045 ? s / 12.92 : pow((s + 0.055) / 1.055, 2.4)
            }
            return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
        }

        /// Near-black or white, whichever has the higher contrast ratio against this colour.
        var contrastingText: String {
            let l = luminance
            return (l + 0.05) / 0.05 >= 1.05 / (l + 0.05) ? "#1a1a1a" : "#ffffff"
        }

        /// Piecewise-linear interpolation through evenly spaced stops, t in 0…1.
        static func interpolate(_ stops: [RGB], _ t: Double) -> RGB {
            let t = t.isNaN ? 0 : min(max(t, 0), 1)
            let pos = t * Double(stops.count - 1)
            let i = min(Int(pos), stops.count - 2)
            let f = pos - Double(i)
            let a = stops[i], b = stops[i + 1]
            return RGB(a.r + (b.r - a.r) * f, a.g + (b.g - a.g) * f, a.b + (b.b - a.b) * f)
        }
    }

    /// ColorBrewer Blues, starting from pure white.
    static let sequentialStops: [RGB] = [0xFFFFFF, 0xDEEBF7, 0xC6DBEF, 0x9ECAE1, 0x6BAED6, 0x4292C6, 0x2171B5, 0x08519C, 0x08306B]
        .map { RGB(hex: $0) }
    /// ColorBrewer RdBu halves, each from pure white outwards.
    static let divergingBelowStops: [RGB] = [0xFFFFFF, 0xD1E5F0, 0x92C5DE, 0x4393C3, 0x2166AC].map { RGB(hex: $0) }
    static let divergingAboveStops: [RGB] = [0xFFFFFF, 0xFDDBC7, 0xF4A582, 0xD6604D, 0xB2182B].map { RGB(hex: $0) }

    /// Value → colour for heatmaps (the rules are in `heatmap`'s documentation).
    struct ColorScale {
        let lo: Double
        let hi: Double
        let center: Double?

        init(range: ClosedRange<Double>?, center: Double?, data: [Double]) {
            let center = center.flatMap { $0.isFinite ? $0 : nil }
            self.center = center
            if let range, range.lowerBound.isFinite, range.upperBound.isFinite {
                (lo, hi) = (range.lowerBound, range.upperBound)
            } else if let c = center {
                let d = data.map { abs($0 - c) }.max() ?? 0
                (lo, hi) = (c - (d > 0 ? d : 1), c + (d > 0 ? d : 1))
            } else {
                (lo, hi) = (data.min() ?? 0, data.max() ?? 1)
            }
        }

        func color(_ v: Double) -> RGB {
            guard let c = center else {
                return RGB.interpolate(SVGPlot.sequentialStops, hi > lo ? (v - lo) / (hi - lo) : 0.5)
            }
            if v < c { return RGB.interpolate(SVGPlot.divergingBelowStops, c > lo ? (c - v) / (c - lo) : 1) }
            if v > c { return RGB.interpolate(SVGPlot.divergingAboveStops, hi > c ? (v - c) / (hi - c) : 1) }
            return RGB(255, 255, 255)
        }
    }
}

// MARK: - Writing SVG

extension SVGPlot {
    /// Builds the document one element per line; every attribute value and text goes through
    /// `escape`.
    struct Writer {
        private var lines: [String]

        /// Opens `<svg>` with its `<title>` and a white background.
        init(title: String, width: Int, height: Int) {
            lines = [
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" "
                    + "viewBox=\"0 0 \(width) \(height)\" role=\"img\" font-family=\"sans-serif\" font-size=\"11\">",
                "<title>\(SVGPlot.escape(title))</title>",
            ]
            element("rect", [("class", "background"), ("x", "0"), ("y", "0"), ("width", "\(width)"),
                             ("height", "\(height)"), ("fill", "#ffffff")])
        }

        mutating func open(_ name: String, _ attributes: [(String, String)]) {
            lines.append("<\(name)\(Self.render(attributes))>")
        }

        mutating func close(_ name: String) {
            lines.append("</\(name)>")
        }

        /// One element with optional text content and an optional `<title>` tooltip child.
        mutating func element(_ name: String, _ attributes: [(String, String)], text: String? = nil, tooltip: String? = nil) {
            let head = "<\(name)\(Self.render(attributes))"
            if text == nil && tooltip == nil {
                lines.append(head + "/>")
                return
            }
            let tip = tooltip.map { "<title>\(SVGPlot.escape($0))</title>" } ?? ""
            lines.append(head + ">" + tip + SVGPlot.escape(text ?? "") + "</\(name)>")
        }

        mutating func text(_ s: String, x: Double, y: Double, anchor: String = "start", cls: String,
                           extra: [(String, String)] = []) {
            var attributes = [("class", cls), ("x", SVGPlot.num(x)), ("y", SVGPlot.num(y))]
            if anchor != "start" { attributes.append(("text-anchor", anchor)) }
            element("text", attributes + extra, text: s)
        }

        /// The visible title, bold, centred, shortened to the page width.
        mutating func title(_ title: String, width: Double) {
            guard !title.isEmpty else { return }
            text(SVGPlot.truncate(title, maxWidth: width - 16, size: 14), x: width / 2, y: 22, anchor: "middle",
                 cls: "title", extra: [("font-size", "14"), ("font-weight", "bold")])
        }

        /// x label centred under the frame at `xLabelY`, y label rotated along the left edge.
        mutating func axisLabels(x: String, y: String, frame: Frame, xLabelY: Double) {
            if !x.isEmpty {
                text(x, x: frame.x + frame.width / 2, y: xLabelY, anchor: "middle", cls: "axis-label")
            }
            if !y.isEmpty {
                let cx = 21.0, cy = frame.y + frame.height / 2
                text(y, x: cx, y: cy, anchor: "middle", cls: "axis-label",
                     extra: [("transform", "rotate(-90 \(SVGPlot.num(cx)) \(SVGPlot.num(cy)))")])
            }
        }

        func finish() -> String {
            (lines + ["</svg>"]).joined(separator: "\n") + "\n"
        }

        private static func render(_ attributes: [(String, String)]) -> String {
            attributes.map { " \($0.0)=\"\(SVGPlot.escape($0.1))\"" }.joined()
        }
    }

    /// A coordinate: one decimal at most, locale-independent, "-0" and a trailing ".0" dropped.
    static func num(_ v: Double) -> String {
        guard v.isFinite else { return "0" }
        var s = String(format: "%.1f", v)
        if s.hasSuffix(".0") { s.removeLast(2) }
        return s == "-0" ? "0" : s
    }

    /// Estimated rendered width of `s` in a sans-serif font (0.6 em per character, a little wide).
    static func textWidth(_ s: String, size: Double = 11) -> Double {
        Double(s.count) * size * 0.6
    }

    /// `s` shortened with "…" so its estimated width stays within `maxWidth`.
    static func truncate(_ s: String, maxWidth: Double, size: Double = 11) -> String {
        guard textWidth(s, size: size) > maxWidth else { return s }
        let keep = max(Int(maxWidth / (size * 0.6)) - 1, 1)
        return String(s.prefix(keep)) + "…"
    }
}
