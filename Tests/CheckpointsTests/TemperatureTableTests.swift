@testable import Checkpoints
import Testing

@Suite struct TemperatureTableTests {
    static let text = #"""
    {"format": "nopekit.temperatures/1", "method": "headscale",
     "model": {"architecture": "llama", "layers": 2, "heads": 3, "head_dim": 8, "source": "tiny"},
     "training_length": 256, "target_length": 1024,
     "scales": [[1.5, 1.0, 2.25], null], "search": {"steps": 10}}
    """#

    @Test func roundTrips() throws {
        let t = try TemperatureTable.decode(try JSONReader.parse(Self.text), file: "t.json")
        #expect(t.scales[0] == [1.5, 1.0, 2.25] && t.scales[1] == nil && t.targetLength == 1024)
        let again = try TemperatureTable.decode(t.json, file: "again")
        #expect(again == t)
    }

    @Test(arguments: [
        Self.text.replacingOccurrences(of: "nopekit.temperatures/1", with: "other/1"),
        Self.text.replacingOccurrences(of: "[1.5, 1.0, 2.25]", with: "[1.5, 1.0]"),
        Self.text.replacingOccurrences(of: "[1.5, 1.0, 2.25]", with: "[1.5, -1.0, 2.25]"),
        Self.text.replacingOccurrences(of: ", null]", with: "]"),
    ])
    func refusesMalformedTables(_ text: String) throws {
        #expect(throws: TemperatureTableError.self) { try TemperatureTable.decode(try JSONReader.parse(text), file: "bad.json") }
    }

    /// Found by FuzzTemperatureTable: 1.6e105 is a finite Double, so the table loaded with an
    /// infinite Float scale (which it then wrote as `inf`, not JSON); 1e-60 became a zero scale.
    @Test(arguments: ["1.6e105", "1e-60", "3.5e38"])
    func scalesOutsideTheFloatRangeAreRefused(_ value: String) throws {
        let text = Self.text.replacingOccurrences(of: "[1.5, 1.0, 2.25]", with: "[1.5, \(value), 2.25]")
        let detail = "scales row 0: every scale must be a positive number within the range of a 32-bit float"
        #expect(throws: TemperatureTableError.invalid(file: "bad.json", detail: detail)) {
            try TemperatureTable.decode(try JSONReader.parse(text), file: "bad.json")
        }
        let largest = Self.text.replacingOccurrences(of: "[1.5, 1.0, 2.25]", with: "[1.5, 3.4e38, 2.25]")
        #expect(try TemperatureTable.decode(try JSONReader.parse(largest), file: "ok.json").scales[0]?[1] == 3.4e38)
    }

    /// A non-number is an error naming its row and head, not silently dropped.
    @Test func namesTheRowOfANonNumber() throws {
        let text = Self.text.replacingOccurrences(of: "[1.5, 1.0, 2.25]", with: #"[1.5, "1.0", 2.25]"#)
        #expect(throws: TemperatureTableError.invalid(file: "bad.json", detail: #"scales row 0, head 1: "1.0" is not a number"#)) {
            try TemperatureTable.decode(try JSONReader.parse(text), file: "bad.json")
        }
    }

    @Test func tellsPerLayerTablesApart() throws {
        var t = try TemperatureTable.decode(try JSONReader.parse(Self.text), file: "t.json")
        #expect(!t.isConstantPerLayer && !t.isIdentity)
        t.scales[0] = [1.25, 1.25, 1.25]
        #expect(t.isConstantPerLayer && t.scale(layer: 0, head: 2) == 1.25 && t.scale(layer: 1, head: 0) == 1)
        t.scales[0] = [1, 1, 1]
        #expect(t.isIdentity)
    }

    /// The written form is pinned byte for byte (a round trip through our own reader and writer
    /// alone would accept any change to both; issue 13).
    @Test func writesTheDocumentedFormat() throws {
        let t = try TemperatureTable.decode(try JSONReader.parse(Self.text), file: "t.json")
        #expect(JSONWriter.compact(t.json) == #"{"format":"nopekit.temperatures/1","method":"headscale","model":{"architecture":"llama","layers":2,"heads":3,"head_dim":8,"source":"tiny"},"training_length":256,"target_length":1024,"scales":[[1.5,1.0,2.25],null],"search":{"steps":10}}"#)
    }

    /// A table is checked against the model it is applied to: layers, heads and head size.
    @Test func checksTheModelItIsAppliedTo() throws {
        let t = try TemperatureTable.decode(try JSONReader.parse(Self.text), file: "t.json")
        func config(layers: Int, heads: Int, headDim: Int) throws -> ModelConfig {
            try ModelConfig.decode(try JSONReader.parse("""
                {"model_type": "llama", "hidden_size": \(heads * headDim), "num_hidden_layers": \(layers),
                 "num_attention_heads": \(heads), "head_dim": \(headDim), "intermediate_size": 64, "vocab_size": 32}
                """), file: "config.json")
        }
        try t.check(against: try config(layers: 2, heads: 3, headDim: 8), file: "t.json")
        for (l, h, e) in [(3, 3, 8), (2, 4, 8), (2, 3, 16)] {
            #expect(throws: TemperatureTableError.mismatch(file: "t.json", detail: "table is for 2 layers × 3 heads of 8, the model has \(l) × \(h) of \(e)")) {
                try t.check(against: try config(layers: l, heads: h, headDim: e), file: "t.json")
            }
        }
    }
}
