import Checkpoints
import Foundation

/// What a bake changes, decided from headers only: which tensors are scaled (row by row), which
/// are dropped, and the table that says so. Making a plan reads no tensor data except the
/// paper checkpoints' own `scale_param` vectors, so `--dry-run` is instant.
public struct BakePlan {
    /// One scaled tensor, viewed as `rows` rows of `info.byteCount / rows` bytes; row r is
    /// multiplied by `rowScales[r]` (rows with scale 1 stay byte-identical).
    public struct Edit: Equatable {
        public var info: TensorInfo
        public var layer: Int
        public var rowScales: [Float]
        /// Rows that cannot be scaled in place (MXFP4/NVFP4 with λ not a power of two, a scale
        /// field that would overflow) are dequantised, scaled and quantised again
        /// (`bake --requantize`) instead of refused.
        public var requantize = false
        public var rows: Int { rowScales.count }
        public var rowsChanged: Int { rowScales.filter { $0 != 1 }.count }
    }

    /// Where the scales come from.
    public enum Scales {
        /// A `*.temps.json` table (and its file name, for messages).
        case table(TemperatureTable, file: String)
        /// The per-head multipliers HeadScale checkpoints store as `model.layers.N.self_attn.scale_param`.
        case checkpoint
    }

    public static let checkpointScaleSuffix = ".self_attn.scale_param"

    public let checkpoint: Checkpoint
    public let config: ModelConfig
    public let target: BakeTarget
    public let table: TemperatureTable
    public let edits: [Edit]
    /// Tensors left out of the output (the paper checkpoints' scale_param vectors).
    public let dropped: [TensorInfo]

    public var sourcePath: String { checkpoint.path }
    public var isIdentity: Bool { edits.allSatisfy { $0.rowsChanged == 0 } && dropped.isEmpty }

    /// - Parameter requantize: requantise the rows of quantised tensors that cannot be scaled
    ///   through their scale fields, instead of refusing them.
    public static func make(_ checkpoint: Checkpoint, scales: Scales, requantize: Bool = false) throws -> BakePlan {
        let config = try checkpoint.requireConfig()
        let store = checkpoint.store
        let source = checkpoint.path
        let target = BakeTarget.of(config, store: store)
        if case .notBakeable(let reason) = target { throw BakeError.notBakeable(source: source, reason: reason) }
        if alreadyBaked(checkpoint) { throw BakeError.alreadyBaked(source: source) }

        let table: TemperatureTable
        let tableFile: String
        var dropped: [TensorInfo] = []
        switch scales {
        case .table(let t, let file):
            try t.check(against: config, file: file)
            table = t
            tableFile = file
        case .checkpoint:
            (table, dropped) = try checkpointTable(store, config: config, source: source)
            tableFile = source
        }
        if target == .sharedQueryNorm, let l = table.firstLayerVaryingByHead {
            throw BakeError.perHeadTableForSharedNorm(table: tableFile, layer: l)
        }

        let convention = NameConvention.detect(store)
        let E = config.headDim
        var edits: [Edit] = []
        for (l, row) in table.scales.enumerated() {
            guard let row else { continue }
            // The tensors that carry layer l's scale, and the scale of each of their rows.
            let parts: [(LayerTensor, (Int) -> Float)]
            switch target {
            case .queryRows: parts = [(.q, { row[$0 / E] }), (.qBias, { row[$0 / E] })]
            case .perHeadQueryNorm: parts = [(.qNorm, { row[$0 / E] })]
            default: parts = [(.qNorm, { _ in row[0] })]
            }
            for (part, scaleOfRow) in parts {
                let name = TensorRole.layer(l, part).name(convention)
                guard let info = store.lookup(name) else {
                    if part == .qBias { continue }  // biases are optional
                    throw BakeError.missingTensor(source: source, tensor: name)
                }
                let rows = try rowCount(info, part: part, config: config, target: target, source: source)
                var edit = Edit(info: info, layer: l, rowScales: (0..<rows).map(scaleOfRow))
                guard let type = ggmlType(info.type) else {
                    if edit.rowsChanged == 0 { edits.append(edit); continue }
                    throw BakeError.cannotScale(source: source, tensor: name, reason: "\(info.type.name) elements cannot be scaled")
                }
                let requantizable = type.isQuantized && Quantizers.supported.contains(type)
                edit.requantize = requantize && requantizable
                for lambda in Set(edit.rowScales) where lambda != 1 {
                    if let reason = RowScaling.refusal(type, by: lambda), !edit.requantize {
                        throw BakeError.cannotScale(source: source, tensor: name, reason: reason + (requantizable ? "; --requantize dequantises, scales and requantises these rows instead" : ""))
                    }
                }
                edits.append(edit)
            }
        }
        return BakePlan(checkpoint: checkpoint, config: config, target: target, table: table, edits: edits, dropped: dropped)
    }

    /// Rows of the tensor as the bake sees it: output features of `q_proj`, elements of a
    /// bias or norm vector. Checks the shape against the config.
    static func rowCount(_ info: TensorInfo, part: LayerTensor, config c: ModelConfig, target: BakeTarget, source: String) throws -> Int {
        let expected: [Int]
        switch part {
        case .qNorm: expected = target == .perHeadQueryNorm ? [c.heads * c.headDim] : [c.headDim]
        default: expected = part.shape(c)
        }
        guard info.shape == expected else {
            throw BakeError.wrongShape(source: source, tensor: info.name, expected: expected, actual: info.shape)
        }
        if info.shape.count == 1, case .quantized(let q) = info.type {
            throw BakeError.cannotScale(source: source, tensor: info.name, reason: "a \(q.name) vector has no per-element rows")
        }
        return expected[0]
    }

    static func ggmlType(_ type: TensorType) -> GGMLType? {
        switch type {
        case .plain(let d): return GGMLType(plain: d)
        case .quantized(let q): return q
        }
    }

    /// The table held by `model.layers.N.self_attn.scale_param` tensors (a `[heads]` vector per
    /// layer), and those tensors, which the output drops.
    static func checkpointTable(_ store: any TensorStore, config c: ModelConfig, source: String) throws -> (TemperatureTable, [TensorInfo]) {
        let found = store.tensors.filter { $0.name.hasSuffix(checkpointScaleSuffix) }
        guard !found.isEmpty else { throw BakeError.noCheckpointScales(source: source) }
        var scales = [[Float]?](repeating: nil, count: c.layers)
        for info in found {
            let prefix = "model.layers."
            let middle = info.name.dropLast(checkpointScaleSuffix.count)
            guard middle.hasPrefix(prefix), let l = Int(middle.dropFirst(prefix.count)), (0..<c.layers).contains(l) else {
                throw BakeError.cannotScale(source: source, tensor: info.name, reason: "not the scale vector of a layer of this \(c.layers)-layer model")
            }
            guard info.elementCount == c.heads, info.shape.count <= 1 || info.shape.dropLast().allSatisfy({ $0 == 1 }) else {
                throw BakeError.wrongShape(source: source, tensor: info.name, expected: [c.heads], actual: info.shape)
            }
            let values = try store.readF32(info.name)
            guard values.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw BakeError.cannotScale(source: source, tensor: info.name, reason: "scales must be finite and positive, got \(values)")
            }
            scales[l] = values
        }
        let table = TemperatureTable(method: "checkpoint-scales", architecture: c.modelType, layers: c.layers, heads: c.heads,
                                     headDim: c.headDim, source: (source as NSString).lastPathComponent, scales: scales,
                                     search: .object([JSONMember("from", .string("model.layers.N\(checkpointScaleSuffix)"))]))
        return (table, found)
    }

    /// Whether the source carries nopekit's provenance keys already.
    static func alreadyBaked(_ checkpoint: Checkpoint) -> Bool {
        switch checkpoint.store {
        case let g as GGUFFile: return g.metadata[Provenance.ggufTemperaturesKey] != nil
        case let f as SafetensorsFile: return f.header.metadataValue(Provenance.temperaturesKey) != nil
        case let s as ShardedSafetensors: return s.shards.contains { $0.header.metadataValue(Provenance.temperaturesKey) != nil }
        default: return false
        }
    }
}
