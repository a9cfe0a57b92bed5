import Models
import XCTest

final class ModelDescriptionTests: XCTestCase {
    /// The reference models' `sum(p.numel() for p in model.parameters())` for one input channel
    /// and 10 classes. cifar-cnn's golden count is for 3 channels, 293,034: 576 more (its first
    /// convolution's 32 × 2 × 3 × 3 extra weights).
    static let referenceParameterCounts = [
        "lenet": 61_706, "lenet-bn": 44_878, "alexnet": 46_764_746, "vgg11": 43_093_322, "nin": 1_992_166,
        "googlenet": 5_977_530, "resnet18": 11_178_378, "resnet34": 21_290_250, "densenet": 758_226,
        "cifar-cnn": 293_034 - 576, "preact-resnet18": 11_173_770, "se-resnet18": 11_267_458,
        "resnet50": 23_522_250, "xception": 20_826_866,
        "mobilenet-v3-small": 1_527_818, "mobilenet-v3-large": 4_214_554,
        "efficientnet-b0": 4_019_782, "efficientnet-v2-s": 20_189_866, "inception-v3": 21_805_482,
    ]

    func testParameterCountsEqualTheReference() throws {
        for name in ModelZoo.names {
            let network = try ModelZoo.make(name)
            XCTAssertEqual(network.parameterCount, Self.referenceParameterCounts[name], name)
            let described = try network.describe(side: ModelZoo.spec(name).side)
            XCTAssertEqual(described.reduce(0) { $0 + $1.parameterCount }, network.parameterCount, "\(name): description")
        }
    }

    func testEveryModelEndsInTenLogitsAtItsD2LSide() throws {
        for name in ModelZoo.names {
            let side = try ModelZoo.spec(name).side
            let layers = try ModelZoo.make(name).describe(side: side)
            XCTAssertEqual(layers.last?.outputShape, Shape(1, 10), name)
            XCTAssertGreaterThan(try ModelZoo.make(name).flopsPerImage(side: side), 0, name)
        }
    }

    func testShapesAlongTheWayMatchD2L() throws {
        func shape(_ name: String, _ path: String) throws -> Shape? {
            try ModelZoo.make(name).describe(side: ModelZoo.spec(name).side).first { $0.path == path }?.outputShape
        }
        XCTAssertEqual(try shape("lenet", "conv1"), Shape(1, 6, 28, 28))
        XCTAssertEqual(try shape("lenet", "conv2"), Shape(1, 16, 10, 10))
        XCTAssertEqual(try shape("alexnet", "conv1"), Shape(1, 96, 54, 54))
        XCTAssertEqual(try shape("alexnet", "conv5"), Shape(1, 256, 12, 12))
        XCTAssertEqual(try shape("vgg11", "blocks.4.conv2"), Shape(1, 128, 14, 14))
        XCTAssertEqual(try shape("nin", "block4.mlp2"), Shape(1, 10, 5, 5))
        XCTAssertEqual(try shape("googlenet", "b5.1.p4_2"), Shape(1, 128, 3, 3))
        XCTAssertEqual(try shape("resnet18", "stages.3.1.conv2"), Shape(1, 512, 3, 3))
        XCTAssertEqual(try shape("densenet", "transitions.2.conv"), Shape(1, 120, 6, 6))
    }

    func testTooSmallASideNamesTheLayerWhereTheShapeCollapses() throws {
        XCTAssertThrowsError(try ModelZoo.make("alexnet").describe(side: 32)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("conv") || message.contains("fc1") || message.contains("MaxPool"), message)
        }
        XCTAssertThrowsError(try ModelZoo.make("lenet").describe(side: 20)) { error in
            XCTAssertTrue("\(error)".hasPrefix("fc1 (Linear(400→120))"), "\(error)")
        }
        XCTAssertThrowsError(try ModelZoo.make("vgg11").describe(side: 16)) { error in
            XCTAssertTrue("\(error)".hasPrefix("blocks.4 (MaxPool2d"), "\(error)")
        }
    }

    func testUnknownModelIsRefusedByName() {
        XCTAssertThrowsError(try ModelZoo.make("resnet51")) { XCTAssertTrue("\($0)".contains("resnet51")) }
    }

    func testInputChannelsAndClassesAreParameters() throws {
        let network = try ModelZoo.make("resnet18", inputChannels: 3, classes: 100)
        XCTAssertEqual(network.parameter("stem_conv.weight")?.shape, Shape(64, 3, 7, 7))
        XCTAssertEqual(try network.describe(side: 32).last?.outputShape, Shape(1, 100))
    }

    func testStateDictHasTheReferenceBufferKeys() throws {
        let keys = try ModelZoo.make("lenet-bn").stateDict.map(\.key)
        XCTAssertTrue(keys.contains("bn3.running_mean"))
        XCTAssertTrue(keys.contains("bn1.num_batches_tracked"))
        XCTAssertEqual(keys.count, 18 + 4 * 3)
    }

    // MARK: - Initialization

    func testInitializationIsSeededAndFollowsItsBounds() throws {
        let a = try ModelZoo.make("lenet"), b = try ModelZoo.make("lenet"), c = try ModelZoo.make("lenet")
        a.initialize(.xavier, seed: 1)
        b.initialize(.xavier, seed: 1)
        c.initialize(.xavier, seed: 2)
        let va = Array(UnsafeBufferPointer(start: a.parameterStorage.base, count: a.parameterCount))
        XCTAssertEqual(va, Array(UnsafeBufferPointer(start: b.parameterStorage.base, count: b.parameterCount)))
        XCTAssertNotEqual(va, Array(UnsafeBufferPointer(start: c.parameterStorage.base, count: c.parameterCount)))

        // fc1: 400 → 120. Xavier bound √(6/520); PyTorch's default 1/√400.
        for (scheme, bound) in [(Initialization.xavier, (6.0 / 520).squareRoot()), (.pytorch, 1 / 20.0)] {
            a.initialize(scheme, seed: 3)
            let w = a.parameter("fc1.weight")!.value.array.map { Double($0) }
            XCTAssertLessThanOrEqual(w.map(abs).max()!, bound, "\(scheme)")
            XCTAssertGreaterThan(w.map(abs).max()!, 0.95 * bound, "\(scheme) should fill its range")
            XCTAssertEqual(w.reduce(0, +) / Double(w.count), 0, accuracy: bound / 20, "\(scheme) mean")
        }
        let bn = try ModelZoo.make("lenet-bn")
        bn.initialize(.xavier, seed: 4)
        XCTAssertEqual(bn.parameter("bn1.weight")!.value.array, [1, 1, 1, 1, 1, 1])
        XCTAssertEqual(bn.parameter("bn1.bias")!.value.array, [0, 0, 0, 0, 0, 0])
    }
}
