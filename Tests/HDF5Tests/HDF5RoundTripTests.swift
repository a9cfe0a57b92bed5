import Foundation
import HDF5
import XCTest

final class HDF5RoundTripTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("hdf5-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try FileManager.default.removeItem(at: directory) }

    func testDatasetsAndAttributesSurviveAWriteAndARead() throws {
        let path = directory.appendingPathComponent("round.h5").path
        do {
            let file = try HDF5File(creating: path)
            let root = file.root
            try root.setAttribute("format", "cnn-train-checkpoint")
            try root.setAttribute("version", Int64(1))
            try root.setAttribute("lr", 0.05)
            let weights: [Float] = [1.5, -2, 3.25, 0, 7, 8]
            try weights.withUnsafeBufferPointer { try root.write("model/conv1.weight", shape: [2, 3], floats: $0) }
            try root.write("model/bn1.num_batches_tracked", shape: [], int64s: [42])
            try root.write("images", shape: [2, 2], bytes: [0, 127, 128, 255])
            try file.flush()
        }
        let file = try HDF5File(reading: path)
        let root = file.root
        XCTAssertEqual(try root.stringAttribute("format"), "cnn-train-checkpoint")
        XCTAssertEqual(try root.intAttribute("version"), 1)
        XCTAssertEqual(try root.doubleAttribute("lr"), 0.05)
        XCTAssertEqual(try root.memberNames(), ["images", "model"])
        XCTAssertTrue(root.isGroup("model"))
        XCTAssertTrue(root.contains("model/conv1.weight"))
        XCTAssertFalse(root.contains("model/missing"))
        XCTAssertFalse(root.contains("absent/child"))
        let weight = try root.group("model").dataset("conv1.weight")
        XCTAssertEqual(weight.shape, [2, 3])
        XCTAssertEqual(weight.elementKind, .float)
        XCTAssertEqual(weight.elementSize, 4)
        XCTAssertEqual(try weight.readFloats(), [1.5, -2, 3.25, 0, 7, 8])
        XCTAssertEqual(try weight.readDoubles(), [1.5, -2, 3.25, 0, 7, 8])
        XCTAssertEqual(try root.dataset("model/bn1.num_batches_tracked").readInt64s(), [42])
        XCTAssertEqual(try root.dataset("model/bn1.num_batches_tracked").shape, [])
        XCTAssertEqual(try root.dataset("images").readBytes(), [0, 127, 128, 255])
    }

    func testMissingThingsAreNamedInTheError() throws {
        let path = directory.appendingPathComponent("small.h5").path
        try HDF5File(creating: path).root.write("x", shape: [1], doubles: [1])
        let root = try HDF5File(reading: path).root
        XCTAssertThrowsError(try root.dataset("y")) { XCTAssertTrue("\($0)".contains("small.h5:/: missing dataset 'y'"), "\($0)") }
        XCTAssertThrowsError(try root.group("g")) { XCTAssertTrue("\($0)".contains("missing group 'g'"), "\($0)") }
        XCTAssertThrowsError(try root.stringAttribute("format")) { XCTAssertTrue("\($0)".contains("missing attribute 'format'"), "\($0)") }
        XCTAssertThrowsError(try root.dataset("x").readStrings()) { XCTAssertTrue("\($0)".contains("expected strings"), "\($0)") }
    }

    func testAFileThatIsNotHDF5IsRefused() throws {
        let path = directory.appendingPathComponent("text.h5").path
        try "not hdf5".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try HDF5File(reading: path)) { XCTAssertTrue("\($0)".contains("text.h5: not an HDF5 file"), "\($0)") }
        XCTAssertThrowsError(try HDF5File(reading: directory.appendingPathComponent("absent.h5").path))
    }

    func testATruncatedFileIsRefused() throws {
        let path = directory.appendingPathComponent("full.h5").path
        let values = [Float](repeating: 1, count: 4096)
        try values.withUnsafeBufferPointer { try HDF5File(creating: path).root.write("big", shape: [4096], floats: $0) }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let cut = directory.appendingPathComponent("cut.h5").path
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: cut))
        XCTAssertThrowsError(try HDF5File(reading: cut).root.dataset("big").readFloats())
    }
}
