import Foundation

/// What `nopekit inspect` reports about a checkpoint, computed from headers only (no tensor
/// byte is read), so it is instant on a multi-gigabyte folder.
public struct CheckpointSummary {
    public struct FileEntry: Equatable {
        public var name: String
        public var bytes: Int
        public var tensors: Int
    }

    public var path: String
    public var format: String
    public var files: [FileEntry]
    public var tensorCount: Int
    public var parameters: Int
    public var tensorBytes: Int
    public var fileBytes: Int
    /// Tensor count and bytes per storage type, largest share first.
    public var dtypes: [(type: TensorType, tensors: Int, bytes: Int)]
    /// Stored bits per parameter.
    public var bitsPerWeight: Double { parameters > 0 ? Double(tensorBytes * 8) / Double(parameters) : 0 }
    /// GGUF only: version, alignment and metadata in file order.
    public var gguf: (version: UInt32, alignment: Int, metadata: [GGUFKeyValue])?
    public var config: ModelConfig?
    public var configProblem: String?
    /// Where a temperature would be baked (nil without a config).
    public var bakeTarget: BakeTarget?
    public var tensors: [TensorInfo]

    public init(_ checkpoint: Checkpoint) {
        let store = checkpoint.store
        path = checkpoint.path
        format = checkpoint.format.rawValue
        tensors = store.tensors
        tensorCount = tensors.count
        parameters = tensors.reduce(0) { $0 + $1.elementCount }
        tensorBytes = tensors.reduce(0) { $0 + $1.byteCount }
        var byFile: [String: FileEntry] = [:]
        var order: [String] = []
        for t in tensors {
            if byFile[t.file] == nil {
                order.append(t.file)
                let size = (try? FileManager.default.attributesOfItem(atPath: t.file)[.size] as? Int) ?? 0
                byFile[t.file] = FileEntry(name: (t.file as NSString).lastPathComponent, bytes: size, tensors: 0)
            }
            byFile[t.file]!.tensors += 1
        }
        if let single = store as? SafetensorsFile, tensors.isEmpty {
            order = [single.path]
            byFile[single.path] = FileEntry(name: (single.path as NSString).lastPathComponent, bytes: single.fileSize, tensors: 0)
        }
        if let file = store as? GGUFFile {
            gguf = (file.header.version, file.header.alignment, file.parts[0].metadata)
            if tensors.isEmpty {
                order = [file.path]
                byFile[file.path] = FileEntry(name: (file.path as NSString).lastPathComponent, bytes: file.fileBytes, tensors: 0)
            }
        }
        files = order.map { byFile[$0]! }
        fileBytes = files.reduce(0) { $0 + $1.bytes }
        var mix: [TensorType: (Int, Int)] = [:]
        for t in tensors { mix[t.type, default: (0, 0)].0 += 1; mix[t.type, default: (0, 0)].1 += t.byteCount }
        dtypes = mix.map { ($0.key, $0.value.0, $0.value.1) }.sorted { ($0.bytes, $0.type.name) > ($1.bytes, $1.type.name) }
        config = checkpoint.config
        configProblem = checkpoint.configProblem.map { "\($0)" }
        bakeTarget = checkpoint.format == .pytorch
            ? .notBakeable(reason: "nopekit reads .bin checkpoints but does not write them; convert to safetensors first (nopekit convert IN FOLDER)")
            : config.map { BakeTarget.of($0, store: store) }
    }

    /// The summary as JSON (`inspect --json`); `withTensors` adds the tensor table.
    public func json(withTensors: Bool) -> JSONValue {
        var members: [JSONMember] = [
            JSONMember("path", .string(path)),
            JSONMember("format", .string(format)),
            JSONMember("files", .array(files.map {
                .object([JSONMember("name", .string($0.name)), JSONMember("bytes", .int($0.bytes)), JSONMember("tensors", .int($0.tensors))])
            })),
            JSONMember("tensor_count", .int(tensorCount)),
            JSONMember("parameters", .int(parameters)),
            JSONMember("tensor_bytes", .int(tensorBytes)),
            JSONMember("file_bytes", .int(fileBytes)),
            JSONMember("bits_per_weight", .double((bitsPerWeight * 1000).rounded() / 1000)),
            JSONMember("dtypes", .object(dtypes.map {
                JSONMember($0.type.name, .object([JSONMember("tensors", .int($0.tensors)), JSONMember("bytes", .int($0.bytes))]))
            })),
        ]
        if let g = gguf {
            members.append(JSONMember("gguf", .object([
                JSONMember("version", .int(Int(g.version))),
                JSONMember("alignment", .int(g.alignment)),
                JSONMember("metadata", .array(g.metadata.map { kv in
                    .object([JSONMember("key", .string(kv.key)), JSONMember("type", .string(kv.value.type.description)),
                             JSONMember("value", kv.value.json(maxArrayItems: 16))])
                })),
            ])))
        }
        if let c = config, let target = bakeTarget {
            var architecture = c.json
            if case .object(var m) = architecture {
                m.append(JSONMember("bakeable", .bool(target.isBakeable)))
                m.append(JSONMember("bake_target", .string(target.name)))
                m.append(JSONMember("bake_per_head", .bool(target.perHead)))
                if case .notBakeable(let reason) = target { m.append(JSONMember("not_bakeable_reason", .string(reason))) }
                else { m.append(JSONMember("not_bakeable_reason", .null)) }
                architecture = .object(m)
            }
            members.append(JSONMember("architecture", architecture))
        } else {
            members.append(JSONMember("architecture", .null))
        }
        members.append(JSONMember("config_problem", configProblem.map { .string($0) } ?? .null))
        if withTensors {
            members.append(JSONMember("tensors", .array(tensors.map {
                .object([
                    JSONMember("name", .string($0.name)),
                    JSONMember("dtype", .string($0.type.name)),
                    JSONMember("shape", .array($0.shape.map { .int($0) })),
                    JSONMember("bytes", .int($0.byteCount)),
                    JSONMember("file", .string(($0.file as NSString).lastPathComponent)),
                ])
            })))
        }
        return .object(members)
    }
}

extension ModelConfig {
    /// The config as `inspect --json` reports it.
    public var json: JSONValue {
        var rope: [JSONMember] = [JSONMember("theta", .double(self.rope.theta))]
        if let t = self.rope.scalingType { rope.append(JSONMember("scaling", .string(t))) }
        if let f = self.rope.factor { rope.append(JSONMember("factor", .double(f))) }
        if self.rope.partialRotaryFactor != 1 { rope.append(JSONMember("partial_rotary_factor", .double(self.rope.partialRotaryFactor))) }
        return .object([
            JSONMember("model_type", .string(modelType)),
            JSONMember("layers", .int(layers)),
            JSONMember("hidden", .int(hidden)),
            JSONMember("heads", .int(heads)),
            JSONMember("kv_heads", .int(kvHeads)),
            JSONMember("head_dim", .int(headDim)),
            JSONMember("intermediate", .int(intermediate)),
            JSONMember("vocab", .int(vocab)),
            JSONMember("norm_eps", .double(normEps)),
            JSONMember("tied_embeddings", .bool(tiedEmbeddings)),
            JSONMember("attention_bias", .bool(attentionBias)),
            JSONMember("mlp_bias", .bool(mlpBias)),
            JSONMember("qk_norm", .bool(qkNorm)),
            JSONMember("max_position_embeddings", maxPositionEmbeddings.map { .int($0) } ?? .null),
            JSONMember("rope", .object(rope)),
            JSONMember("positions", .array(positions.map { .string($0.rawValue) })),
            JSONMember("position_pattern", .string(PositionSpec.describe(positions))),
            JSONMember("position_source", .string(positionSource)),
        ])
    }
}

extension GGUFValue {
    /// The value as JSON; arrays longer than `maxArrayItems` are summarised as
    /// `{"element_type", "count", "head": [first items]}`.
    public func json(maxArrayItems: Int) -> JSONValue {
        switch self {
        case .string(let s): return .string(s)
        case .bytes(let b): return .object([JSONMember("bytes_hex", .string(b.map { String(format: "%02x", $0) }.joined()))])
        case .bool(let b): return .bool(b)
        case .float32(let v): return .double(Double(v))
        case .float64(let v): return .double(v)
        case .uint64(let v): return .number(String(v))
        case .array(let items):
            if items.count <= maxArrayItems { return .array(items.map { $0.json(maxArrayItems: maxArrayItems) }) }
            return .object([
                JSONMember("element_type", .string(items.elementType.description)),
                JSONMember("count", .int(items.count)),
                JSONMember("head", .array(items.prefix(8).map { $0.json(maxArrayItems: maxArrayItems) })),
            ])
        default: return .int(intValue ?? 0)
        }
    }
}
