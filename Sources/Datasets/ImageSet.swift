/// One split of an image dataset held in memory as bytes: N images of C×H×W pixels
/// (channel-planar, 0…255) and N labels in 0..<classes.
public struct ImageSet: Sendable {
    /// Where it came from, for messages ("…/train-images-idx3-ubyte.gz").
    public let source: String
    public let pixels: [UInt8]
    public let labels: [Int32]
    public let channels: Int, height: Int, width: Int
    public let classes: Int

    public var count: Int { labels.count }
    public var imageSize: Int { channels * height * width }

    /// `labelSource` names the labels' file in messages when it is not `source`.
    public init(source: String, labelSource: String? = nil, pixels: [UInt8], labels: [Int32],
                channels: Int, height: Int, width: Int, classes: Int) throws {
        guard pixels.count == labels.count * channels * height * width else {
            throw DataError(source, "holds \(pixels.count) pixel bytes for \(labels.count) images of \(channels)×\(height)×\(width)")
        }
        if let bad = labels.first(where: { $0 < 0 || Int($0) >= classes }) {
            throw DataError(labelSource ?? source, "label \(bad) is outside 0..<\(classes)")
        }
        self.source = source
        self.pixels = pixels
        self.labels = labels
        self.channels = channels
        self.height = height
        self.width = width
        self.classes = classes
    }

    /// The first `n` examples (all of them when `n` is nil or larger).
    public func prefix(_ n: Int?) -> ImageSet {
        guard let n, n < count else { return self }
        return try! ImageSet(source: source, pixels: Array(pixels.prefix(n * imageSize)), labels: Array(labels.prefix(n)),
                             channels: channels, height: height, width: width, classes: classes)
    }
}

/// A training and a test split.
public struct Splits: Sendable {
    public var train: ImageSet
    public var test: ImageSet

    public init(train: ImageSet, test: ImageSet) throws {
        guard train.channels == test.channels, train.height == test.height, train.width == test.width else {
            throw DataError(test.source, "test images are \(test.channels)×\(test.height)×\(test.width) but training images are \(train.channels)×\(train.height)×\(train.width)")
        }
        self.train = train
        self.test = test
    }
}

/// A dataset that cannot be used, naming the file and the problem.
public struct DataError: Error, CustomStringConvertible {
    public let file: String, problem: String
    public init(_ file: String, _ problem: String) {
        self.file = file
        self.problem = problem
    }
    public var description: String { "\(file): \(problem)" }
}
