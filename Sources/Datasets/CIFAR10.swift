import Foundation

/// CIFAR-10's binary version: records of 1 label byte and 3072 pixel bytes (red, green and
/// blue planes of 32×32), in data_batch_1.bin … data_batch_5.bin and test_batch.bin.
public enum CIFAR10 {
    static let recordSize = 1 + 3 * 32 * 32

    public static func loadSplits(directory: String) throws -> Splits {
        try Splits(train: load((1...5).map { "\(directory)/data_batch_\($0).bin" }),
                   test: load(["\(directory)/test_batch.bin"]))
    }

    public static func load(_ paths: [String]) throws -> ImageSet {
        var pixels: [UInt8] = [], labels: [Int32] = []
        for path in paths {
            let bytes = try readFileBytes(path)
            guard !bytes.isEmpty, bytes.count % recordSize == 0 else {
                throw DataError(path, "is \(bytes.count) bytes, not a whole number of \(recordSize)-byte records (truncated?)")
            }
            for start in stride(from: 0, to: bytes.count, by: recordSize) {
                guard bytes[start] < 10 else { throw DataError(path, "label \(bytes[start]) is outside 0..<10") }
                labels.append(Int32(bytes[start]))
                pixels.append(contentsOf: bytes[(start + 1)..<(start + recordSize)])
            }
        }
        return try ImageSet(source: paths.count == 1 ? paths[0] : "\(paths[0]) …", pixels: pixels, labels: labels,
                            channels: 3, height: 32, width: 32, classes: 10)
    }
}
