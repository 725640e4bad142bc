/// SplitMix64 (Steele, Lea and Flood 2014): the generator behind the search's data order and
/// every random choice of a verification run. Its state is one number (a search saves and
/// resumes it exactly) and its three lines are easy to repeat, so reference scripts in other
/// languages draw the same keys, depths and fillers (scripts/reference/make_verify_fixtures.py).
public struct SplitMix64: Sendable, Equatable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in 0..<n (modulo: the bias is below 2⁻⁴⁰ for the n used here).
    public mutating func int(_ n: Int) -> Int { Int(next() % UInt64(max(1, n))) }

    /// A double in [0, 1) from the top 53 bits.
    public mutating func unit() -> Double { Double(next() >> 11) / Double(UInt64(1) << 53) }
}
