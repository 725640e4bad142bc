import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
import Verification

/// The elements of an SVG as XMLParser sees them, in document order.
final class ParsedSVG: NSObject, XMLParserDelegate {
    struct Node {
        var name: String
        var attributes: [String: String]
        var text = ""
    }

    private(set) var nodes: [Node] = []
    private var open: [Int] = []

    /// nil when XMLParser rejects the document.
    static func parse(_ svg: String) -> ParsedSVG? {
        let doc = ParsedSVG()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = doc
        return parser.parse() ? doc : nil
    }

    func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]) {
        open.append(nodes.count)
        nodes.append(Node(name: elementName, attributes: attributeDict))
    }

    func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName qName: String?) {
        open.removeLast()
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        if let i = open.last { nodes[i].text += string }
    }

    func nodes(class name: String) -> [Node] { nodes.filter { $0.attributes["class"] == name } }
    func number(_ node: Node, _ attribute: String) -> Double { Double(node.attributes[attribute] ?? "") ?? .nan }
}

@Suite struct SVGPlotTests {
    static var lengths: SVGPlot.Series {
        .init(name: "patched", points: [(256, 9.1), (512, 7.4), (1024, 6.8), (2048, .nan), (4096, 20)])
    }

    static var allPlots: [String] {
        [
            SVGPlot.lineChart(title: "Perplexity", xLabel: "length", yLabel: "ppl",
                              series: [lengths, .init(name: "source", points: [(256, 1.2), (4096, 19)], dashed: true)],
                              logX: true, logY: true, marker: SVGPlot.Marker(x: 1024, label: "training length")),
            SVGPlot.lineChart(title: "single", xLabel: "x", yLabel: "y", series: [.init(name: "one", points: [(3, 3)])]),
            SVGPlot.lineChart(title: "empty", xLabel: "x", yLabel: "y", series: []),
            SVGPlot.scatter(title: "equal", xLabel: "x", yLabel: "y",
                            series: [.init(name: "a long series name that cannot fit on the right", points: [(1, 2), (1, 2)])]),
            SVGPlot.heatmap(title: "passkey", xLabel: "depth", yLabel: "length", columns: ["0", "0.5", "1"],
                            rows: ["512", "1024"], values: [[1, 0.5, nil], [0, 1, 1]], range: 0...1),
            SVGPlot.heatmap(title: "λ per head", xLabel: "head", yLabel: "layer", columns: (0..<32).map(String.init),
                            rows: (0..<4).map(String.init),
                            values: (0..<4).map { l in (0..<32).map { h in Optional(0.8 + Double(l * 32 + h) / 320) } }, center: 1),
            SVGPlot.heatmap(title: "none", xLabel: "", yLabel: "", columns: [], rows: [], values: []),
        ]
    }

    @Test func everyPlotIsAStandaloneSVG() throws {
        for svg in Self.allPlots {
            let doc = try #require(ParsedSVG.parse(svg), "XMLParser rejected:\n\(svg)")
            let root = try #require(doc.nodes.first)
            #expect(root.name == "svg")
            #expect(root.attributes["xmlns"] == "http://www.w3.org/2000/svg")
            #expect(root.attributes["viewBox"] != nil && root.attributes["width"] != nil && root.attributes["height"] != nil)
            #expect(doc.nodes.dropFirst().first?.name == "title")
            #expect(!svg.contains("<script") && !svg.contains("href"))
        }
    }

    @Test func emptyInputSaysNoData() throws {
        let doc = try #require(ParsedSVG.parse(SVGPlot.lineChart(title: "t", xLabel: "x", yLabel: "y", series: [])))
        #expect(doc.nodes(class: "no-data").map(\.text) == ["no data"])
    }

    @Test func titleIsEscapedAndRoundTrips() throws {
        let title = "ppl <&> \"quoted\" 'single'"
        let svg = SVGPlot.lineChart(title: title, xLabel: "x", yLabel: "y", series: [Self.lengths])
        #expect(svg.contains("&lt;&amp;&gt;"))
        #expect(!svg.contains("<&>"))
        let doc = try #require(ParsedSVG.parse(svg))
        #expect(doc.nodes.first { $0.name == "title" }?.text == title)
        #expect(SVGPlot.escape("a&b<c>\"'") == "a&amp;b&lt;c&gt;&quot;&apos;")
    }

    @Test func log2AxisTicksArePowersOfTwo() throws {
        let series = SVGPlot.Series(name: "ppl", points: [(256, 3), (512, 4), (1024, 5), (2048, 6)])
        let svg = SVGPlot.lineChart(title: "t", xLabel: "length", yLabel: "ppl", series: [series], logX: true)
        let doc = try #require(ParsedSVG.parse(svg))
        #expect(doc.nodes(class: "tick-x").map(\.text) == ["256", "512", "1024", "2048"])
    }

    @Test func markerLabelIsDrawn() throws {
        let svg = SVGPlot.lineChart(title: "t", xLabel: "x", yLabel: "y", series: [Self.lengths], logX: true,
                                    marker: SVGPlot.Marker(x: 512, label: "training length"))
        let doc = try #require(ParsedSVG.parse(svg))
        #expect(doc.nodes(class: "marker-label").map(\.text) == ["training length"])
        #expect(doc.nodes(class: "marker").count == 1)
    }

    @Test func heatmapHasOneCellPerValueAndNA() throws {
        let svg = SVGPlot.heatmap(title: "t", xLabel: "x", yLabel: "y", columns: ["a", "b", "c"], rows: ["r1", "r2"],
                                  values: [[0.1, nil, 0.3], [0.4, 0.5, 0.6]])
        let doc = try #require(ParsedSVG.parse(svg))
        #expect(doc.nodes(class: "cell").count == 6)
        #expect(doc.nodes(class: "na-label").map(\.text) == ["n/a"])
        #expect(doc.nodes(class: "cell-label").map(\.text) == ["0.10", "0.30", "0.40", "0.50", "0.60"])
    }

    @Test func divergingHeatmapIsWhiteAtCenter() throws {
        let svg = SVGPlot.heatmap(title: "λ", xLabel: "head", yLabel: "layer", columns: ["0", "1", "2"], rows: ["0"],
                                  values: [[0.5, 1.0, 1.5]], center: 1)
        let fills = try #require(ParsedSVG.parse(svg)).nodes(class: "cell").map { $0.attributes["fill"] ?? "" }
        try #require(fills.count == 3)
        func rgb(_ hex: String) -> (r: Int, b: Int) {
            let v = Int(hex.dropFirst(), radix: 16) ?? 0
            return (v >> 16, v & 0xFF)
        }
        #expect(fills[1] == "#ffffff")
        #expect(rgb(fills[0]).b > rgb(fills[0]).r, "below the centre is blue: \(fills[0])")
        #expect(rgb(fills[2]).r > rgb(fills[2]).b, "above the centre is red: \(fills[2])")
    }

    /// Linear ranges are the data range padded by 5 % of the span on each side: x 0…10 → -0.5…10.5,
    /// y 0…100 → -5…105.
    @Test func pointLandsWherePaddingRuleSays() throws {
        let svg = SVGPlot.lineChart(title: "t", xLabel: "x", yLabel: "y",
                                    series: [.init(name: "s", points: [(0, 0), (10, 100)])])
        let doc = try #require(ParsedSVG.parse(svg))
        let area = try #require(doc.nodes(class: "plot-area").first)
        let (x, y, w, h) = (doc.number(area, "x"), doc.number(area, "y"), doc.number(area, "width"), doc.number(area, "height"))
        let last = try #require(doc.nodes(class: "point").last)
        #expect(abs(doc.number(last, "cx") - (x + w * 10.5 / 11)) < 0.1)
        #expect(abs(doc.number(last, "cy") - (y + h - h * 105 / 110)) < 0.1)
    }

    @Test func outputIsDeterministic() {
        #expect(Self.allPlots == Self.allPlots)
    }
}
