import Checkpoints
import Foundation

/// The outcome of a verification: the subjects' measurements side by side (the first is the
/// baseline when there are several), the equivalence check and the temperature table. Rendered
/// as a terminal table, JSON, CSV files and (ReportPage) a self-contained HTML page.
public struct VerificationReport: Sendable {
    public var plan: VerificationPlan
    public var subjects: [Measurements]
    public var equivalence: EquivalenceResult?
    public var table: TemperatureTable?
    public var data: String
    public var passkeyTemplate: String
    /// Lines a reader must see (e.g. a shortened schedule).
    public var notes: [String] = []

    public init(plan: VerificationPlan, subjects: [Measurements], equivalence: EquivalenceResult?, table: TemperatureTable?,
                data: String, passkeyTemplate: String) {
        self.plan = plan; self.subjects = subjects; self.equivalence = equivalence; self.table = table
        self.data = data; self.passkeyTemplate = passkeyTemplate
    }

    static func fixed(_ v: Double, _ digits: Int = 3) -> String { v.isFinite ? String(format: "%.\(digits)f", v) : "–" }

    /// Mean over layers and heads.
    static func meanEntropy(_ bits: [[Double]]) -> Double {
        let all = bits.joined()
        return all.reduce(0, +) / Double(max(1, all.count))
    }

    // MARK: Terminal

    /// One row per length: perplexity (each protocol), passkey accuracy and mean entropy, the
    /// subjects side by side as "a → b".
    public var terminalTable: (header: [String], rows: [[String]]) {
        func cell(_ values: [String]) -> String { values.joined(separator: " → ") }
        var header = ["length"]
        if let t = plan.trainingLength { header.append("× \(t)") }
        for p in plan.protocols { header.append("ppl \(p.rawValue)") }
        if plan.passkey != nil { header.append("passkey") }
        if plan.entropyWindows != nil { header.append("entropy bits (of log2 n)") }
        let rows = plan.lengths.enumerated().map { i, L -> [String] in
            var row = [String(L)]
            if let t = plan.trainingLength { row.append(String(format: "%g×", Double(L) / Double(t))) }
            for p in plan.protocols {
                row.append(cell(subjects.map { $0.perplexity(p, length: L).map { Self.fixed($0.perplexity) } ?? "–" }))
            }
            if plan.passkey != nil {
                row.append(cell(subjects.map { $0.passkey.map { String(format: "%.0f%%", 100 * $0.byLength[i]) } ?? "–" }))
            }
            if plan.entropyWindows != nil {
                row.append(cell(subjects.map { $0.entropy(length: L).map { Self.fixed(Self.meanEntropy($0), 2) } ?? "–" })
                           + " (\(Self.fixed(AttentionEntropy.ceiling(length: L), 1)))")
            }
            return row
        }
        return (header, rows)
    }

    // MARK: JSON

    public var json: JSONValue {
        var members: [JSONMember] = [
            JSONMember("lengths", .array(plan.lengths.map { .int($0) })),
            JSONMember("training_length", plan.trainingLength.map { .int($0) } ?? .null),
            JSONMember("data", .string(data)),
            JSONMember("perplexity_settings", .object([JSONMember("protocols", .array(plan.protocols.map { .string($0.rawValue) })),
                                                       JSONMember("stride", .int(plan.stride)), JSONMember("max_tokens", .int(plan.maxTokens))])),
            JSONMember("passkey_prompt", .string(passkeyTemplate)),
        ]
        if let grid = plan.passkey {
            members.append(JSONMember("passkey_settings", .object([JSONMember("lengths", .array(grid.lengths.map { .int($0) })),
                                                                   JSONMember("depths", .int(PasskeyGrid.depths)),
                                                                   JSONMember("trials", .int(grid.trials)), JSONMember("seed", .number(String(grid.seed)))])))
        }
        members.append(JSONMember("equivalence", equivalence.map(Self.json) ?? .null))
        members.append(JSONMember("scales", table.map { .array($0.scales.map { row in row.map { .array($0.map { .double(Double($0)) }) } ?? .null }) } ?? .null))
        members.append(JSONMember("subjects", .array(subjects.map(Self.json))))
        members.append(JSONMember("notes", .array(notes.map { .string($0) })))
        return .object(members)
    }

    static func json(_ e: EquivalenceResult) -> JSONValue {
        .object([JSONMember("passed", .bool(e.passed)), JSONMember("stored_type", .string(e.storedType)),
                 JSONMember("sequences", .int(e.sequences)), JSONMember("positions", .int(e.positions)),
                 JSONMember("max_abs_difference", .double(e.maxAbsDifference)),
                 JSONMember("max_relative_difference", .double(e.maxRelativeDifference)),
                 JSONMember("tolerance", .double(e.tolerance)), JSONMember("mean_kl", .double(e.meanKL)),
                 JSONMember("same_top_token", .double(e.sameTopToken))])
    }

    static func json(_ m: Measurements) -> JSONValue {
        var members = [
            JSONMember("label", .string(m.label)), JSONMember("source", .string(m.source)), JSONMember("seconds", .double(m.seconds)),
            JSONMember("perplexity", .array(m.perplexity.map { p in
                .object([JSONMember("protocol", .string(p.method.rawValue)), JSONMember("length", .int(p.length)),
                         JSONMember("perplexity", .double(p.perplexity)), JSONMember("standard_error", .double(p.standardError)),
                         JSONMember("mean_loss", .double(p.meanLoss)), JSONMember("tokens", .int(p.tokens)), JSONMember("windows", .int(p.windows))])
            })),
        ]
        if let a = m.passkey {
            members.append(JSONMember("passkey", .object([
                JSONMember("accuracy_by_length", .array(zip(a.lengths, a.byLength).map { .object([JSONMember("length", .int($0)), JSONMember("accuracy", .double($1))]) })),
                JSONMember("accuracy_by_length_and_depth", .array(a.grid.map { .array($0.map { .double($0) }) })),
                JSONMember("prompts", .int(m.passkeyOutcomes.count)),
                JSONMember("correct", .int(m.passkeyOutcomes.filter(\.correct).count)),
            ])))
        }
        members.append(JSONMember("entropy_bits", .array(m.entropy.map { e in
            .object([JSONMember("length", .int(e.length)), JSONMember("uniform_bits", .double(AttentionEntropy.ceiling(length: e.length))),
                     JSONMember("mean", .double(meanEntropy(e.bits))),
                     JSONMember("per_head", .array(e.bits.map { .array($0.map { .double($0) }) }))])
        })))
        return .object(members)
    }

    // MARK: CSV

    /// File name → contents: perplexity.csv, passkey.csv (one row per prompt), entropy.csv,
    /// scales.csv (when there is a table).
    public var csvFiles: [(name: String, text: String)] {
        func line(_ cells: [String]) -> String { cells.map(Self.csvField).joined(separator: ",") + "\n" }
        var files: [(String, String)] = []
        var text = line(["model", "protocol", "length", "perplexity", "standard_error", "mean_loss", "tokens", "windows"])
        for m in subjects {
            for p in m.perplexity {
                text += line([m.label, p.method.rawValue, String(p.length), "\(p.perplexity)", "\(p.standardError)", "\(p.meanLoss)",
                              String(p.tokens), String(p.windows)])
            }
        }
        files.append(("perplexity.csv", text))
        if plan.passkey != nil {
            text = line(["model", "length", "depth", "trial", "key", "prompt_tokens", "correct", "expected", "generated"])
            for m in subjects {
                for o in m.passkeyOutcomes {
                    let p = o.prompt
                    text += line([m.label, String(p.length), String(p.depth), String(p.trial), String(p.key), String(p.tokens.count),
                                  o.correct ? "1" : "0", p.answer.map(String.init).joined(separator: " "),
                                  o.generated.map(String.init).joined(separator: " ")])
                }
            }
            files.append(("passkey.csv", text))
        }
        if plan.entropyWindows != nil {
            text = line(["model", "length", "layer", "head", "entropy_bits", "uniform_bits"])
            for m in subjects {
                for e in m.entropy {
                    for (l, row) in e.bits.enumerated() {
                        for (h, v) in row.enumerated() {
                            text += line([m.label, String(e.length), String(l), String(h), "\(v)", "\(AttentionEntropy.ceiling(length: e.length))"])
                        }
                    }
                }
            }
            files.append(("entropy.csv", text))
        }
        if let table {
            text = line(["layer", "head", "scale"])
            for (l, row) in table.scales.enumerated() {
                guard let row else { continue }
                for (h, s) in row.enumerated() { text += line([String(l), String(h), "\(s)"]) }
            }
            files.append(("scales.csv", text))
        }
        return files
    }

    /// RFC 4180: quoted when it holds a comma, quote or line break.
    static func csvField(_ s: String) -> String {
        guard s.contains(where: { ",\"\n\r".contains($0) }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
