import Tensor

/// Random images for benchmarks and tests without data. Each class has its own random
/// prototype image and each example is its class's prototype plus noise, so a model can
/// learn it; the same seed gives the same set.
public enum Synthetic {
    /// Training and test splits over the same class prototypes (drawn from `seed`).
    public static func splits(train: Int, test: Int, classes: Int, channels: Int, side: Int, seed: UInt64) -> Splits {
        var rng = SeededGenerator(seed: seed)
        let size = channels * side * side
        let prototypes = (0..<(classes * size)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        func examples(_ count: Int, _ stream: UInt64, _ source: String) -> ImageSet {
            var rng = SeededGenerator(seed: seed &+ stream)
            var pixels = [UInt8](repeating: 0, count: count * size)
            var labels = [Int32](repeating: 0, count: count)
            for i in 0..<count {
                let label = Int(rng.next() % UInt64(classes))
                labels[i] = Int32(label)
                for j in 0..<size {
                    let noise = Double(UInt8(truncatingIfNeeded: rng.next()))
                    pixels[i * size + j] = UInt8((0.6 * Double(prototypes[label * size + j]) + 0.4 * noise).rounded())
                }
            }
            return try! ImageSet(source: source, pixels: pixels, labels: labels, channels: channels, height: side, width: side,
                                 classes: classes)
        }
        return try! Splits(train: examples(train, 1, "synthetic:train"), test: examples(test, 2, "synthetic:test"))
    }
}
