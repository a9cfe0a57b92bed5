import Datasets
import Tensor
import XCTest

final class PreprocessingTests: XCTestCase {
    private func assemble(_ set: ImageSet, _ p: Preprocessing, seed: UInt64 = 1) -> [Real] {
        let assembler = BatchAssembler(set: set, preprocessing: p)
        let images = Tensor(zeros: Shape(set.count, assembler.channels, p.side, p.side))
        var labels = [Int32](repeating: -1, count: set.count)
        Array(0..<set.count).withUnsafeBufferPointer { indices in
            assembler.assemble(indices, into: images, labels: &labels, seed: seed)
        }
        XCTAssertEqual(labels, set.labels)
        return images.array
    }

    private func set(_ pixels: [UInt8], height: Int, width: Int) throws -> ImageSet {
        try ImageSet(source: "test", pixels: pixels, labels: [0], channels: 1, height: height, width: width, classes: 2)
    }

    /// F.interpolate([[1, 2], [3, 4]], size=4, mode="bilinear", align_corners=False).
    func testBilinearUpsamplingMatchesPyTorch() throws {
        let out = assemble(try set([51, 102, 153, 204], height: 2, width: 2), Preprocessing(side: 4)).map { Double($0) * 255 / 51 }
        let expected: [Double] = [1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4]
        for (a, e) in zip(out, expected) { XCTAssertEqual(a, e, accuracy: 1e-5) }
    }

    /// A 3×5 image to 7×11: half-pixel-centre bilinear values computed independently (JAX in
    /// float64, which agrees with PyTorch's align_corners=False when enlarging).
    func testNonIntegerRatiosMatchTheReference() {
        let pixels: [UInt8] = [217, 163, 130, 69, 78, 10, 19, 4, 44, 208, 166, 233, 128, 155, 248]
        let out = BilinearResize(height: 3, width: 5, toHeight: 7, toWidth: 11).apply(pixels)
        let expectedRows: [Int: [Double]] = [
            0: [0.8509803922, 0.8124777184, 0.7162210339, 0.6274509804, 0.568627451, 0.5098039216,
                0.4010695187, 0.2923351159, 0.2834224599, 0.2994652406, 0.3058823529],
            3: [0.0392156863, 0.0456327986, 0.0616755793, 0.0691622103, 0.0424242424, 0.0156862745,
                0.0869875223, 0.1582887701, 0.4064171123, 0.6987522282, 0.8156862745],
            6: [0.6509803922, 0.6987522282, 0.8181818182, 0.8762923351, 0.6891265597, 0.5019607843,
                0.5500891266, 0.5982174688, 0.7404634581, 0.9062388592, 0.9725490196],
        ]
        for (row, expected) in expectedRows {
            for (x, e) in expected.enumerated() { XCTAssertEqual(Double(out[row * 11 + x]), e, accuracy: 1e-6, "(\(row), \(x))") }
        }
    }

    func testSameSideOnlyScalesAndNormalizes() throws {
        let s = try set([0, 255, 51, 102], height: 2, width: 2)
        XCTAssertEqual(assemble(s, Preprocessing(side: 2)), [0, 1, 0.2, 0.4])
        let normalized = assemble(s, Preprocessing(side: 2, normalization: ([0.5], [0.25])))
        for (a, e) in zip(normalized, [-2, 2, -1.2, -0.4] as [Real]) { XCTAssertEqual(a, e, accuracy: 1e-6) }
    }

    /// `--channels 3` on gray images: each channel is the gray, normalized by its own mean and std.
    func testReplicatesOneChannelIntoThree() throws {
        let s = try set([0, 255, 51, 102], height: 2, width: 2)
        let rgb = assemble(s, Preprocessing(side: 2, normalization: ([0, 0.5, 0.2], [1, 0.25, 0.5]), replicatedChannels: 3))
        let expected: [Real] = [0, 1, 0.2, 0.4, -2, 2, -1.2, -0.4, -0.4, 1.6, 0, 0.4]
        for (a, e) in zip(rgb, expected) { XCTAssertEqual(a, e, accuracy: 1e-6) }
        XCTAssertEqual(rgb.count, 12)
    }

    func testAugmentationIsSeededAndKeepsThePixels() throws {
        let pixels = (0..<64).map { UInt8($0 * 3) }
        let s = try ImageSet(source: "t", pixels: pixels, labels: [1], channels: 1, height: 8, width: 8, classes: 2)
        let p = Preprocessing(side: 8, augment: true, cropPadding: 2)
        XCTAssertEqual(assemble(s, p, seed: 5), assemble(s, p, seed: 5))
        let variants = Set((0..<20).map { assemble(s, p, seed: UInt64($0)) })
        XCTAssertGreaterThan(variants.count, 5, "crops and flips should vary with the seed")
        let original = Set(assemble(s, Preprocessing(side: 8)))
        for v in variants { XCTAssertTrue(Set(v).subtracting([0]).isSubset(of: original), "only moved pixels and padding") }
    }
}
