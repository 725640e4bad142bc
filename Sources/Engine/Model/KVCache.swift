import Checkpoints

/// Keys and values of every layer for B sequences, kept between the steps of an incremental
/// decode so that a generated token costs one row through each layer instead of a pass over
/// the whole prompt.
///
///     keys[l], values[l]     [B, capacity, G·E]    after k-norm and RoPE, as `Layer.forward` stores them
///
/// Positions 0..<`length` are filled. `LlamaModel.decode` appends rows and advances `length`;
/// the layer context (RoPE tables for `capacity` positions) is built once with the cache.
public final class KVCache {
    public let sequences: Int          // B
    public let capacity: Int           // positions the cache can hold
    public internal(set) var length = 0
    let keys: [FloatBuffer], values: [FloatBuffer]
    let context: LayerContext
    let rowWidth: Int                  // G·E

    init(config c: ModelConfig, rope: Rope, sequences: Int, capacity: Int, threads: Int, rowChunk: Int) {
        self.sequences = sequences
        self.capacity = capacity
        rowWidth = c.kvHeads * c.headDim
        keys = (0..<c.layers).map { _ in FloatBuffer(sequences * capacity * c.kvHeads * c.headDim) }
        values = (0..<c.layers).map { _ in FloatBuffer(sequences * capacity * c.kvHeads * c.headDim) }
        context = LayerContext(config: c, rope: rope, length: capacity, threads: threads, rowChunk: rowChunk)
    }

    /// One layer's view of the cache for the rows at `positions`.
    public struct Slot {
        let keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>
        let stride: Int                // capacity · G·E: one sequence's block
        /// The positions of the rows being added.
        public let positions: Range<Int>

        func keys(sequence b: Int) -> UnsafeMutablePointer<Float> { keys + b * stride }
        func values(sequence b: Int) -> UnsafeMutablePointer<Float> { values + b * stride }
    }

    func slot(layer l: Int, adding n: Int) -> Slot {
        Slot(keys: keys[l].pointer, values: values[l].pointer, stride: capacity * rowWidth, positions: length..<(length + n))
    }

    /// Forgets every position (the buffers are reused).
    public func reset() { length = 0 }
}
