/// A small, fast, seedable generator (SplitMix64 seeding a xoshiro256**), so that
/// initialization, dropout and augmentation are reproducible on every platform.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    public mutating func next() -> UInt64 {
        let result = rotl(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = rotl(s.3, 45)
        return result
    }

    @inline(__always) private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in [0, 1) with 24 random bits, so float32 and float64 builds draw the same values.
    @inline(__always)
    public mutating func nextUnit() -> Real { Real(next() >> 40) * (1.0 / 16_777_216.0) }

    /// Uniform in [low, high).
    @inline(__always)
    public mutating func uniform(_ low: Real, _ high: Real) -> Real { low + (high - low) * nextUnit() }

    /// The generator's full state, for checkpoints.
    public var state: [UInt64] { [s.0, s.1, s.2, s.3] }
    public init(state: [UInt64]) {
        precondition(state.count == 4, "generator state has 4 words")
        s = (state[0], state[1], state[2], state[3])
    }
}
