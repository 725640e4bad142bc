/// The config checked against the tensors it describes, before anything is allocated from its
/// numbers: a config.json is small text that anyone can edit, and a layer count of 10^18 or a
/// width of 2^62 must be an error naming the field, not an allocation of exabytes or an
/// arithmetic trap.
extension ModelConfig {
    /// Sizes above this are refused outright (every product the engine forms stays far from
    /// overflow; real models are below 2^20 in every dimension).
    public static let sizeLimit = 1 << 31

    /// The most layers a config may declare. Decoding allocates per-layer settings (position
    /// kind, window) from the layer count before any tensor is looked at, so this bound comes
    /// first; the deepest published models have a few hundred layers. (The fuzzer found a
    /// config.json of 3·10^15 layers asking for 27 PB there.)
    public static let layerLimit = 1 << 16

    /// `count` if it is a layer count nopekit can allocate settings for, else an error naming
    /// `key`.
    static func checkLayerCount(_ count: Int, key: String, file: String) throws -> Int {
        guard count <= layerLimit else {
            throw ModelConfigError.invalidValue(file: file, key: key, detail: "\(count) layers; at most \(layerLimit) are supported")
        }
        return count
    }

    public func check(against store: any TensorStore) throws {
        let source = store.sourcePath
        func fail(_ detail: String) -> ModelConfigError { .doesNotMatchWeights(source: source, detail: detail) }
        for (key, value) in [("num_hidden_layers", layers), ("hidden_size", hidden), ("intermediate_size", intermediate),
                             ("num_attention_heads", heads), ("num_key_value_heads", kvHeads), ("head_dim", headDim), ("vocab_size", vocab)] {
            guard value > 0 && value <= Self.sizeLimit else { throw fail("\(key) = \(value) is outside 1…\(Self.sizeLimit)") }
        }
        guard layers <= store.tensors.count else {
            throw fail("num_hidden_layers = \(layers), but the checkpoint holds only \(store.tensors.count) tensors")
        }
        let convention = NameConvention.detect(store)
        for role in TensorRole.all(self) {
            let name = role.name(convention)
            guard let info = store.lookup(name) else { throw fail("tensor '\(name)' is missing") }
            let expected = role.shape(self)
            // a vector may be stored with extra unit dimensions (as the engine's reader accepts)
            let sameVector = expected.count == 1 && info.elementCount == expected[0]
            guard info.shape == expected || sameVector else {
                throw fail("tensor '\(name)' has shape \(info.shape), the config implies \(expected)")
            }
        }
        let storedLayers = store.tensors.compactMap { t -> Int? in
            if case .layer(let l, _)? = TensorRole.parse(t.name, convention) { return l } else { return nil }
        }
        if let extra = storedLayers.max(), extra >= layers {
            throw fail("layer \(extra) is stored, but num_hidden_layers = \(layers)")
        }
    }
}
