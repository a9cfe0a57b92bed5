import Foundation

/// The IDX files of MNIST and Fashion-MNIST: a big-endian header (magic 0x0803 for images
/// with 3 dimensions, 0x0801 for labels), then unsigned bytes.
public enum IDX {
    /// The training and test splits from a folder holding the four standard files, each
    /// either gzip-compressed (`.gz`) or raw.
    public static func loadSplits(directory: String, classes: Int = 10) throws -> Splits {
        func file(_ stem: String) -> String {
            let gz = "\(directory)/\(stem).gz"
            return FileManager.default.fileExists(atPath: gz) ? gz : "\(directory)/\(stem)"
        }
        return try Splits(
            train: load(images: file("train-images-idx3-ubyte"), labels: file("train-labels-idx1-ubyte"), classes: classes),
            test: load(images: file("t10k-images-idx3-ubyte"), labels: file("t10k-labels-idx1-ubyte"), classes: classes))
    }

    public static func load(images imagesPath: String, labels labelsPath: String, classes: Int = 10) throws -> ImageSet {
        let images = try readFileBytes(imagesPath), labels = try readFileBytes(labelsPath)
        let imageDims = try header(images, path: imagesPath, magic: 0x0803, dimensions: 3)
        let labelDims = try header(labels, path: labelsPath, magic: 0x0801, dimensions: 1)
        let (n, h, w) = (imageDims[0], imageDims[1], imageDims[2])
        guard labelDims[0] == n else {
            throw DataError(labelsPath, "holds \(labelDims[0]) labels but \(imagesPath) holds \(n) images")
        }
        return try ImageSet(source: imagesPath, labelSource: labelsPath, pixels: Array(images[16...]),
                            labels: labels[8...].map { Int32($0) }, channels: 1, height: h, width: w, classes: classes)
    }

    /// The dimensions after checking the magic number and that the data is all there.
    private static func header(_ bytes: [UInt8], path: String, magic: UInt32, dimensions: Int) throws -> [Int] {
        let headerSize = 4 + 4 * dimensions
        guard bytes.count >= headerSize else { throw DataError(path, "is truncated: \(bytes.count) bytes, shorter than its header") }
        func word(_ i: Int) -> UInt32 { bytes[i..<(i + 4)].reduce(0) { $0 << 8 | UInt32($1) } }
        guard word(0) == magic else {
            throw DataError(path, "has magic number 0x\(String(word(0), radix: 16)), expected 0x\(String(magic, radix: 16)) for IDX \(dimensions == 1 ? "labels" : "images")")
        }
        let dims = (0..<dimensions).map { Int(word(4 + 4 * $0)) }
        let expected = headerSize + dims.reduce(1, *)
        guard bytes.count == expected else {
            throw DataError(path, bytes.count < expected
                ? "is truncated: \(bytes.count) bytes where its header promises \(expected)"
                : "has \(bytes.count - expected) bytes beyond the \(expected) its header describes")
        }
        return dims
    }
}
