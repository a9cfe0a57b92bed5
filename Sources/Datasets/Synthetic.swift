import Tensor

/// Random images for benchmarks and tests without data. Each class has its own random
/// prototype image and each example is its class's prototype plus noise, so a model can
/// learn it; the same seed gives the same set.
public enum Synthetic {
    public static func make(count: Int, classes: Int, channels: Int, side: Int, seed: UInt64, source: String = "synthetic") -> ImageSet {
        var rng = SeededGenerator(seed: seed)
        let size = channels * side * side
        let prototypes = (0..<(classes * size)).map { _ in Double(rng.next() % 256) }
        var pixels = [UInt8](repeating: 0, count: count * size)
        var labels = [Int32](repeating: 0, count: count)
        for i in 0..<count {
            let label = Int(rng.next() % UInt64(classes))
            labels[i] = Int32(label)
            for j in 0..<size {
                let noisy = 0.6 * prototypes[label * size + j] + 0.4 * Double(rng.next() % 256)
                pixels[i * size + j] = UInt8(noisy.rounded())
            }
        }
        return try! ImageSet(source: source, pixels: pixels, labels: labels, channels: channels, height: side, width: side, classes: classes)
    }

    public static func splits(train: Int, test: Int, classes: Int, channels: Int, side: Int, seed: UInt64) -> Splits {
        try! Splits(train: make(count: train, classes: classes, channels: channels, side: side, seed: seed, source: "synthetic:train"),
                    test: make(count: test, classes: classes, channels: channels, side: side, seed: seed &+ 1, source: "synthetic:test"))
    }
}
