import Testing
@testable import Checkpoints

@Suite struct JSONReaderTests {
    @Test func parsesEveryValueKind() throws {
        let v = try JSONReader.parse(#" {"a": [1, -2.5e3, true, false, null, "x\ny\u00e9\ud83d\ude00"], "b": {}} "#)
        #expect(v["a"]?.arrayValue?.count == 6)
        #expect(v["a"]?.arrayValue?[0].unsignedValue == 1)
        #expect(v["a"]?.arrayValue?[1].doubleValue == -2500)
        #expect(v["a"]?.arrayValue?[5].stringValue == "x\ny\u{e9}\u{1F600}")
        #expect(v["b"]?.objectValue?.isEmpty == true)
    }

    @Test func keepsDuplicatesAndOrderSoCallersCanRefuseThem() throws {
        let v = try JSONReader.parse(#"{"z": 1, "a": 2, "z": 3}"#)
        #expect(v.objectValue?.map(\.key) == ["z", "a", "z"])
        #expect(v.duplicateKey == "z")
        #expect(v["z"]?.unsignedValue == 3)  // last wins, as serde_json
    }

    @Test(arguments: [
        "{\"a\":1}\u{0}", "{\"a\":1} x", "{\"a\":01}", "{\"a\":1.}", "{\"a\":-}", "{\"a\":\"\u{1}\"}",
        "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00\"}", "{\"a\":\"\\x\"}", "{a:1}", "{\"a\":1,}", "[1,]", "", "tru",
    ])
    func rejectsWhatSerdeRejects(_ text: String) {
        #expect(throws: JSONSyntaxError.self) { try JSONReader.parse(text) }
    }

    @Test func capsNestingDepth() throws {
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect(throws: JSONSyntaxError.self) { try JSONReader.parse(deep) }
        let ok = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(try JSONReader.parse(ok).arrayValue != nil)
    }

    @Test func unsignedValueRejectsFloatsAndNegatives() throws {
        #expect(try JSONReader.parse("16.0").unsignedValue == nil)
        #expect(try JSONReader.parse("-1").unsignedValue == nil)
        #expect(try JSONReader.parse("1e3").unsignedValue == nil)
        #expect(try JSONReader.parse("18446744073709551615").unsignedValue == UInt64.max)
        #expect(try JSONReader.parse("18446744073709551616").unsignedValue == nil)
    }
}

@Suite struct JSONWriterTests {
    @Test func compactMatchesSerdeJSON() {
        let v = JSONValue.object([
            JSONMember("k\"\\/\u{1}\u{1f}é", .array([.int(1), .bool(true), .null, .string("\t\n\r\u{8}\u{c}")])),
        ])
        #expect(JSONWriter.compact(v) == #"{"k\"\\/\u0001\u001fé":[1,true,null,"\t\n\r\b\f"]}"#)
    }

    @Test func prettyMatchesPythonJSONDumps() {
        // json.dumps({"b": {"y": 1, "x": []}, "a": "é😀\u007f"}, indent=2, sort_keys=True)
        let v = JSONValue.object([
            JSONMember("b", .object([JSONMember("y", .int(1)), JSONMember("x", .array([]))])),
            JSONMember("a", .string("é\u{1F600}\u{7f}")),
        ])
        let expected = "{\n  \"a\": \"\\u00e9\\ud83d\\ude00\\u007f\",\n  \"b\": {\n    \"x\": [],\n    \"y\": 1\n  }\n}"
        #expect(JSONWriter.pretty(v) == expected)
    }

    @Test func roundTrips() throws {
        let text = #"{"a":[1,2.5,"x"],"b":{"c":null,"d":false}}"#
        #expect(JSONWriter.compact(try JSONReader.parse(text)) == text)
    }
}
