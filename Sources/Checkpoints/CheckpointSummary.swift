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
    /// Tensor count and bytes per dtype, largest share first.
    public var dtypes: [(dtype: DType, tensors: Int, bytes: Int)]
    public var config: ModelConfig?
    public var configProblem: String?
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
                byFile[t.file] = FileEntry(name: (t.file as NSString).lastPathComponent, bytes: size ?? 0, tensors: 0)
            }
            byFile[t.file]!.tensors += 1
        }
        if let single = store as? SafetensorsFile, tensors.isEmpty {
            order = [single.path]
            byFile[single.path] = FileEntry(name: (single.path as NSString).lastPathComponent, bytes: single.fileSize, tensors: 0)
        }
        files = order.map { byFile[$0]! }
        fileBytes = files.reduce(0) { $0 + $1.bytes }
        var mix: [DType: (Int, Int)] = [:]
        for t in tensors { mix[t.dtype, default: (0, 0)].0 += 1; mix[t.dtype, default: (0, 0)].1 += t.byteCount }
        dtypes = mix.map { ($0.key, $0.value.0, $0.value.1) }.sorted { ($0.bytes, $0.dtype.code) > ($1.bytes, $1.dtype.code) }
        config = checkpoint.config
        configProblem = checkpoint.configProblem.map { "\($0)" }
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
            JSONMember("dtypes", .object(dtypes.map {
                JSONMember($0.dtype.code, .object([JSONMember("tensors", .int($0.tensors)), JSONMember("bytes", .int($0.bytes))]))
            })),
        ]
        if let c = config {
            members.append(JSONMember("architecture", c.json))
        } else {
            members.append(JSONMember("architecture", .null))
        }
        members.append(JSONMember("config_problem", configProblem.map { .string($0) } ?? .null))
        if withTensors {
            members.append(JSONMember("tensors", .array(tensors.map {
                .object([
                    JSONMember("name", .string($0.name)),
                    JSONMember("dtype", .string($0.dtype.code)),
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
            JSONMember("bakeable", .bool(isBakeable)),
            JSONMember("not_bakeable_reason", notBakeableReason.map { .string($0) } ?? .null),
        ])
    }
}
