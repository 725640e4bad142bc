import Checkpoints

/// What a baked checkpoint records about itself: the table (compacted) and the source's
/// checksum, in `config.json`, in every safetensors shard's `__metadata__` and in GGUF metadata.
public enum Provenance {
    /// Keys in `config.json` and safetensors `__metadata__`.
    public static let temperaturesKey = "nopekit_temperatures"
    public static let sourceKey = "nopekit_source_sha256"
    /// Keys in GGUF metadata (gguf's dotted namespace).
    public static let ggufTemperaturesKey = "nopekit.temperatures"
    public static let ggufSourceKey = "nopekit.source_sha256"

    /// The checksum's stand-in while it is being computed: same length, so headers written with
    /// it are rewritten in place once it is known.
    public static let placeholder = String(repeating: "0", count: 64)
}
