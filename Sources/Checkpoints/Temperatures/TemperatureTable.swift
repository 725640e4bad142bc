import Foundation

/// Per-head softmax temperatures for a model: the `*.temps.json` file every stage exchanges.
///
/// `scales[l][h]` multiplies the standard 1/sqrt(head_dim) logit scale of head h in layer l
/// (1 = the unpatched model); a `null` row is a layer that was not searched (all 1).
///
///     {"format": "nopekit.temperatures/1", "method": "headscale",
///      "model": {"architecture": "llama", "layers": 22, "heads": 32, "head_dim": 64, ...},
///      "training_length": 2048, "target_length": 8192,
///      "scales": [[1.61, 1.02, …], null, …], "search": {...}}
public struct TemperatureTable: Equatable, Sendable {
    public static let format = "nopekit.temperatures/1"

    public var method: String
    public var architecture: String
    public var layers: Int
    public var heads: Int
    public var headDim: Int
    public var source: String?
    public var sourceSHA256: String?
    public var trainingLength: Int?
    public var targetLength: Int?
    public var scales: [[Float]?]
    /// Search settings and results, kept as given.
    public var search: JSONValue

    public init(method: String, architecture: String, layers: Int, heads: Int, headDim: Int, source: String? = nil,
                sourceSHA256: String? = nil, trainingLength: Int? = nil, targetLength: Int? = nil, scales: [[Float]?],
                search: JSONValue = .object([])) {
        self.method = method
        self.architecture = architecture
        self.layers = layers
        self.heads = heads
        self.headDim = headDim
        self.source = source
        self.sourceSHA256 = sourceSHA256
        self.trainingLength = trainingLength
        self.targetLength = targetLength
        self.scales = scales
        self.search = search
    }

    public static func load(_ path: String) throws -> TemperatureTable {
        let json: JSONValue
        do { json = try JSONReader.parse(try SmallFile.read(path)) } catch {
            throw TemperatureTableError.invalid(file: path, detail: "cannot read: \(error)")
        }
        return try decode(json, file: path)
    }

    public static func decode(_ json: JSONValue, file: String) throws -> TemperatureTable {
        func bad(_ d: String) -> TemperatureTableError { .invalid(file: file, detail: d) }
        guard json["format"]?.stringValue == format else { throw bad("\"format\" must be \"\(format)\"") }
        guard let model = json["model"], let layers = model["layers"]?.intValue, let heads = model["heads"]?.intValue,
              let headDim = model["head_dim"]?.intValue, layers > 0, heads > 0 else {
            throw bad("\"model\" must give layers, heads and head_dim")
        }
        guard let rows = json["scales"]?.arrayValue, rows.count == layers else { throw bad("\"scales\" must have one row per layer (\(layers))") }
        var scales: [[Float]?] = []
        for (l, row) in rows.enumerated() {
            if row.isNull { scales.append(nil); continue }
            guard let items = row.arrayValue, items.count == heads else {
                throw bad("scales row \(l) must be null or a list of \(heads) numbers")
            }
            var values: [Float] = []
            for (h, item) in items.enumerated() {
                guard let v = item.doubleValue else { throw bad("scales row \(l), head \(h): \(JSONWriter.compact(item)) is not a number") }
                values.append(Float(v))
            }
            // Checked as the Float the engine multiplies by: 1e300 is a finite Double but an
            // infinite Float, and 1e-60 a positive Double but a zero Float (found by FuzzTemperatureTable).
            guard values.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw bad("scales row \(l): every scale must be a positive number within the range of a 32-bit float")
            }
            scales.append(values)
        }
        return TemperatureTable(method: json["method"]?.stringValue ?? "unknown", architecture: model["architecture"]?.stringValue ?? "unknown",
                                layers: layers, heads: heads, headDim: headDim, source: model["source"]?.stringValue,
                                sourceSHA256: model["source_sha256"]?.stringValue, trainingLength: json["training_length"]?.intValue,
                                targetLength: json["target_length"]?.intValue, scales: scales, search: json["search"] ?? .object([]))
    }

    public var json: JSONValue {
        var model: [JSONMember] = [JSONMember("architecture", .string(architecture)), JSONMember("layers", .int(layers)),
                                   JSONMember("heads", .int(heads)), JSONMember("head_dim", .int(headDim))]
        if let source { model.append(JSONMember("source", .string(source))) }
        if let sourceSHA256 { model.append(JSONMember("source_sha256", .string(sourceSHA256))) }
        return .object([
            JSONMember("format", .string(Self.format)),
            JSONMember("method", .string(method)),
            JSONMember("model", .object(model)),
            JSONMember("training_length", trainingLength.map { .int($0) } ?? .null),
            JSONMember("target_length", targetLength.map { .int($0) } ?? .null),
            JSONMember("scales", .array(scales.map { row in row.map { .array($0.map { .number("\($0)") }) } ?? .null })),
            JSONMember("search", search),
        ])
    }

    /// The table as one line of JSON (provenance in checkpoint metadata).
    public var compactJSON: String { JSONWriter.compact(json) }

    /// The scale of head `h` in layer `l` (1 for a layer that was not searched).
    public func scale(layer l: Int, head h: Int) -> Float { scales[l]?[h] ?? 1 }

    /// The first layer whose heads have different scales, if any.
    public var firstLayerVaryingByHead: Int? {
        scales.firstIndex { row in row.map { r in r.contains { $0 != r[0] } } ?? false }
    }

    /// Whether every row has one value for all its heads (a per-layer temperature).
    public var isConstantPerLayer: Bool { firstLayerVaryingByHead == nil }

    /// Whether every scale is 1 (the table changes nothing).
    public var isIdentity: Bool { scales.allSatisfy { $0?.allSatisfy { $0 == 1 } ?? true } }

    /// Fails unless the table fits `config` (same layers, heads and head size).
    public func check(against config: ModelConfig, file: String) throws {
        guard layers == config.layers, heads == config.heads, headDim == config.headDim else {
            throw TemperatureTableError.mismatch(file: file, detail: "table is for \(layers) layers × \(heads) heads of \(headDim), the model has \(config.layers) × \(config.heads) of \(config.headDim)")
        }
    }
}

public enum TemperatureTableError: Error, CustomStringConvertible, Equatable {
    case invalid(file: String, detail: String)
    case mismatch(file: String, detail: String)

    public var description: String {
        switch self {
        case .invalid(let f, let d): return "\(f): not a temperature table: \(d)"
        case .mismatch(let f, let d): return "\(f): does not fit this model: \(d)"
        }
    }
}
