import HDF5

/// An image set in one HDF5 file: `train/images` (uint8, [N, C, H, W] or [N, H, W]) and
/// `train/labels` (integers, [N]), and the same under `test/`. Classes are 0…max label.
public enum HDF5ImageSet {
    public static func loadSplits(path: String) throws -> Splits {
        let file: HDF5File
        do { file = try HDF5File(reading: path) } catch { throw DataError(path, "is not a readable HDF5 file") }
        let root = file.root
        let parts = try ["train", "test"].map { split -> (pixels: [UInt8], labels: [Int64], dims: [Int]) in
            guard root.isGroup(split) else { throw DataError(path, "has no '\(split)' group (expected train/ and test/)") }
            for name in ["images", "labels"] where !root.contains("\(split)/\(name)") {
                throw DataError(path, "has no dataset '\(split)/\(name)'")
            }
            let images = try root.dataset("\(split)/images"), labels = try root.dataset("\(split)/labels")
            guard images.elementKind == .integer, images.elementSize == 1 else {
                throw DataError(path, "'\(split)/images' must be uint8 pixels")
            }
            guard labels.elementKind == .integer else { throw DataError(path, "'\(split)/labels' must be integers") }
            var dims = images.shape
            if dims.count == 3 { dims.insert(1, at: 1) }
            guard dims.count == 4 else {
                throw DataError(path, "'\(split)/images' has shape \(images.shape), expected [N, C, H, W] or [N, H, W]")
            }
            guard labels.shape == [dims[0]] else {
                throw DataError(path, "'\(split)/labels' has shape \(labels.shape) for \(dims[0]) images")
            }
            return (try images.readBytes(), try labels.readInt64s(), dims)
        }
        let classes = Int(parts.flatMap(\.labels).max() ?? 0) + 1
        if let negative = parts.flatMap(\.labels).first(where: { $0 < 0 }) {
            throw DataError(path, "label \(negative) is negative")
        }
        let sets = try zip(["train", "test"], parts).map { split, part in
            try ImageSet(source: "\(path):\(split)", pixels: part.pixels, labels: part.labels.map { Int32($0) },
                         channels: part.dims[1], height: part.dims[2], width: part.dims[3], classes: max(classes, 2))
        }
        return try Splits(train: sets[0], test: sets[1])
    }
}
