import ArgumentParser
import Datasets
import Foundation
import Models

/// Where the images come from and how they become tensors (shared by train and eval).
struct DataOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "fashion-mnist, mnist, cifar10, synthetic, or the path of an HDF5 image set (.h5).",
        discussion: "An HDF5 set holds train/images (uint8, [N,C,H,W] or [N,H,W]), train/labels (integers, [N]) and the same under test/."))
    var dataset = "fashion-mnist"

    @Option(name: .long, help: ArgumentHelp("Folder of the IDX or CIFAR-10 files.", valueName: "dir"))
    var dataDir: String?

    @Option(name: .long, help: "Resize images to this side (bilinear; default: the model's D2L side).")
    var side: Int?

    @Option(name: .long, help: ArgumentHelp(
        "Input channels of the network (default: the images'). 3 on single-channel images copies the gray into each, for weights pretrained on RGB.",
        valueName: "N"))
    var channels: Int?

    @Option(name: .long, help: ArgumentHelp("Per-channel mean subtracted after scaling to [0,1] (comma-separated).", valueName: "m[,m,m]"))
    var mean: String?

    @Option(name: .long, help: ArgumentHelp("Per-channel standard deviation to divide by (with --mean).", valueName: "s[,s,s]"))
    var std: String?

    @Option(name: .long, help: ArgumentHelp("Use only the first N training examples.", valueName: "N"))
    var limitTrain: Int?

    @Option(name: .long, help: ArgumentHelp("Use only the first N test examples.", valueName: "N"))
    var limitTest: Int?

    @Option(name: .long, help: "Synthetic data: training and test examples, as train,test.")
    var syntheticCount = "2048,512"

    @Option(name: .long, help: "Synthetic data: image side, channels and classes, as side,channels,classes.")
    var syntheticShape = "28,1,10"

    static let fashionMNISTDirectory = "/usr/share/datasets/fashion-mnist"

    func validate() throws {
        for (name, value) in [("--limit-train", limitTrain), ("--limit-test", limitTest), ("--side", side), ("--channels", channels)] {
            if let value, value < 1 { throw ValidationError("\(name) must be positive, got \(value)") }
        }
        if (mean == nil) != (std == nil) { throw ValidationError("--mean and --std go together") }
        _ = try normalization(channels: nil)
        _ = try syntheticNumbers()
    }

    private func numbers<T: LosslessStringConvertible>(_ text: String, _ option: String, count: Int? = nil) throws -> [T] {
        let parts = text.split(separator: ",").map { T(String($0).trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }), count == nil || parts.count == count! else {
            throw ValidationError("\(option) expects \(count.map { "\($0) " } ?? "")comma-separated numbers, got '\(text)'")
        }
        return parts.map { $0! }
    }

    private func syntheticNumbers() throws -> (train: Int, test: Int, side: Int, channels: Int, classes: Int) {
        let counts: [Int] = try numbers(syntheticCount, "--synthetic-count", count: 2)
        let shape: [Int] = try numbers(syntheticShape, "--synthetic-shape", count: 3)
        guard counts.allSatisfy({ $0 > 0 }), shape[0] > 0, shape[1] > 0, shape[2] >= 2 else {
            throw ValidationError("synthetic counts and sides must be positive, with at least 2 classes")
        }
        return (counts[0], counts[1], shape[0], shape[1], shape[2])
    }

    func normalization(channels: Int?) throws -> (mean: [Real], std: [Real])? {
        guard let mean, let std else { return nil }
        let m: [Double] = try numbers(mean, "--mean"), s: [Double] = try numbers(std, "--std")
        guard m.count == s.count else { throw ValidationError("--mean has \(m.count) values but --std has \(s.count)") }
        guard s.allSatisfy({ $0 > 0 }) else { throw ValidationError("--std values must be positive") }
        if let channels, m.count != channels {
            throw ValidationError("--mean and --std need \(channels) value(s), one per channel; got \(m.count)")
        }
        return (m.map { Real($0) }, s.map { Real($0) })
    }

    /// Reads both splits, applying the limits; a bad file is a `DataError` naming it.
    func load(seed: UInt64) throws -> Splits {
        var splits: Splits
        switch dataset {
        case "fashion-mnist": splits = try IDX.loadSplits(directory: dataDir ?? Self.fashionMNISTDirectory)
        case "mnist":
            guard let dataDir else { throw ValidationError("--dataset mnist needs --data-dir with the four IDX files") }
            splits = try IDX.loadSplits(directory: dataDir)
        case "cifar10":
            guard let dataDir else { throw ValidationError("--dataset cifar10 needs --data-dir with the binary batches") }
            splits = try CIFAR10.loadSplits(directory: dataDir)
        case "synthetic":
            let s = try syntheticNumbers()
            splits = Synthetic.splits(train: s.train, test: s.test, classes: s.classes, channels: s.channels, side: s.side, seed: seed)
        case let path where path.hasSuffix(".h5") || path.hasSuffix(".hdf5"):
            splits = try HDF5ImageSet.loadSplits(path: path)
        default:
            throw ValidationError("unknown dataset '\(dataset)'; expected fashion-mnist, mnist, cifar10, synthetic or a .h5 file")
        }
        splits.train = splits.train.prefix(limitTrain)
        splits.test = splits.test.prefix(limitTest)
        return splits
    }

    /// The network's input channels for images of `set`: the images' own, or `--channels`
    /// copies of a single channel.
    func inputChannels(for set: ImageSet) throws -> Int {
        guard let channels, channels != set.channels else { return set.channels }
        guard set.channels == 1 else {
            throw ValidationError("--channels \(channels): the images have \(set.channels) channels; only single-channel images can be copied into more")
        }
        return channels
    }

    func preprocessing(model: String, channels: Int, augment: Bool) throws -> Preprocessing {
        Preprocessing(side: try side ?? ModelZoo.spec(model).side, normalization: try normalization(channels: channels), augment: augment,
                      replicatedChannels: channels)
    }
}
