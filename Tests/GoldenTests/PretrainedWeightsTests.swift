import Checkpoint
import Foundation
import HDF5
import Models
import XCTest

/// Pretrained torchvision weights into cnn-train: `scripts/convert_checkpoint.py from-pytorch`
/// on a state_dict that torchvision built and torch.save wrote (Fixtures/pretrained, made by
/// its make_pretrained.py), then the network's logits against torchvision's.
final class PretrainedWeightsTests: XCTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixture = Golden.fixtures.appendingPathComponent("pretrained")
    static let model = "mobilenet-v3-small"
    /// λ of `ModelGoldenTests.safety`: the same probabilistic bound on the same kind of network.
    static let safety = isFloat64Build ? 8.0 : 4.0

    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("pretrained-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    /// A Python with numpy and h5py, which the converter needs (scripts/install-deps.sh
    /// installs Debian's): the system one first, since a user's PATH may lead elsewhere.
    static func python() throws -> String {
        for candidate in ["/usr/bin/python3", "python3"] {
            if (try? run("/usr/bin/env", [candidate, "-c", "import numpy, h5py"]))?.status == 0 { return candidate }
        }
        XCTFail("no python3 with numpy and h5py (scripts/install-deps.sh installs python3-numpy and python3-h5py)")
        throw XCTSkip("no python3 with numpy and h5py")
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    /// Runs the converter on `source`; returns its exit status and output.
    private func convert(_ source: URL, model: String = model) throws -> (status: Int32, output: String, weights: String) {
        let weights = directory.appendingPathComponent("\(model).h5").path
        let script = Self.repository.appendingPathComponent("scripts/convert_checkpoint.py").path
        let result = try Self.run("/usr/bin/env", [try Self.python(), script, "from-pytorch", source.path, weights, "--model", model])
        return (result.status, result.output, weights)
    }

    private func convertedFixture() throws -> String {
        let result = try convert(Self.fixture.appendingPathComponent("\(Self.model).pt"))
        XCTAssertEqual(result.status, 0, result.output)
        return result.weights
    }

    /// ImageNet-shaped network (3 channels, 1000 classes) with the converted weights.
    private func pretrainedNetwork(_ weights: String) throws -> Network {
        let network = try ModelZoo.make(Self.model, inputChannels: 3, classes: 1000)
        XCTAssertEqual(try ModelWeights.load(into: network, from: weights), .verified, "the converter writes a checksum")
        return network
    }

    func testConvertedWeightsGiveTorchvisionsLogits() throws {
        let weights = try convertedFixture()
        let network = try pretrainedNetwork(weights)
        // Three training-mode passes set torchvision's running statistics.
        XCTAssertEqual(network.batchNorms.first?.layer.numBatchesTracked, 3)

        let reference = try HDF5File(reading: Self.fixture.appendingPathComponent("\(Self.model).h5").path).root
        let x = try reference.tensor("x")
        let expected = try reference.doubles("logits")
        let logits = network.forward(x, mode: .evaluation).array

        // As in ModelGoldenTests: the depth bound u·ΣKₗ, or how far this build's own rounding
        // moves the logits at these weights (λ times the larger of two perturbations by each
        // layer's rounding backward error), whichever is larger.
        var change = 0.0
        for seed: UInt64 in [1, 2] {
            let perturbed = try ModelZoo.make(Self.model, inputChannels: 3, classes: 1000)
            perturbed.parameterStorage.base.update(from: network.parameterStorage.base, count: network.parameterCount)
            for ((_, a), (_, b)) in zip(perturbed.batchNorms, network.batchNorms) {
                a.runningMean.copy(from: b.runningMean)
                a.runningVar.copy(from: b.runningVar)
            }
            RoundingBound.perturbByRoundingSteps(perturbed, steps: RoundingBound.parameterSteps(network), seed: seed)
            change = max(change, relativeError(perturbed.forward(x, mode: .evaluation).array, logits.map { Double($0) }))
        }
        let depth = try RoundingBound.forward(network, side: x.shape[2], batch: x.shape[0])
        let tolerance = max(depth, Self.safety * change)
        let error = relativeError(logits, expected)
        XCTAssertLessThanOrEqual(error, tolerance, "logits of the converted torchvision weights")
        // A wrong layout (one transposed weight, say) is far beyond rounding.
        XCTAssertLessThan(tolerance, 1e-2, "the comparison resolves the network")
        print("pretrained \(Self.model): logits error \(error), tolerance \(tolerance) (depth \(depth), rounding moves them \(change))")
    }

    func testReplacingTheHeadKeepsEveryOtherWeight() throws {
        let weights = try convertedFixture()
        let pretrained = try pretrainedNetwork(weights)
        let network = try ModelZoo.make(Self.model, inputChannels: 3, classes: 10)
        network.initialize(.xavier, seed: 7)
        let head = network.classifierKeys
        XCTAssertEqual(head, ["classifier.3.weight", "classifier.3.bias"])
        let fresh = head.map { network.parameter($0)!.value.array }

        XCTAssertThrowsError(try ModelWeights.load(into: network, from: weights)) {
            XCTAssertTrue("\($0)".contains("classifier.3.weight has shape [1000, 1024], expected [10, 1024] (10 classes here; --replace-head"), "\($0)")
        }
        try ModelWeights.load(into: network, from: weights, replacingClassifier: true)
        for (key, parameter) in network.parameters where !head.contains(key) {
            XCTAssertEqual(parameter.value.array, pretrained.parameter(key)!.value.array, "\(key) from the file")
        }
        for ((_, a), (_, b)) in zip(network.batchNorms, pretrained.batchNorms) {
            XCTAssertEqual(a.runningVar.array, b.runningVar.array)
        }
        XCTAssertEqual(head.map { network.parameter($0)!.value.array }, fresh, "the classifier keeps its fresh weights")

        let gray = try ModelZoo.make(Self.model, inputChannels: 1, classes: 10)
        XCTAssertThrowsError(try ModelWeights.load(into: gray, from: weights, replacingClassifier: true)) {
            XCTAssertTrue("\($0)".contains("features.0.0.weight has shape [16, 3, 3, 3], expected [16, 1, 3, 3] (the first layer takes 1 input channel(s) here; --channels"), "\($0)")
        }
    }

    /// torch.load would run any callable a pickle names; the converter takes tensors only.
    func testConverterRefusesAPickleThatRunsCode() throws {
        let archive = directory.appendingPathComponent("evil.pt")
        let marker = directory.appendingPathComponent("ran")
        let maker = """
        import pickle, zipfile, sys
        class Evil:
            def __reduce__(self):
                return (__import__("os").system, ("touch " + sys.argv[2],))
        with zipfile.ZipFile(sys.argv[1], "w") as z:
            z.writestr("evil/data.pkl", pickle.dumps({"w": Evil()}, protocol=2))
            z.writestr("evil/byteorder", "little")
        """
        XCTAssertEqual(try Self.run("/usr/bin/env", [try Self.python(), "-c", maker, archive.path, marker.path]).status, 0)
        let result = try convert(archive)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.output.contains("evil.pt: holds a posix.system"), result.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker.path), "the pickle's code ran")
        XCTAssertFalse(FileManager.default.fileExists(atPath: result.weights), "nothing written")
    }
}
