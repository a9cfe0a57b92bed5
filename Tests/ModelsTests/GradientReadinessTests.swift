import Models
import XCTest

/// `Network.gradientsReady` reports every parameter exactly once per backward, and only once
/// its gradient is final: data parallelism sends a bucket as soon as all of it is reported.
final class GradientReadinessTests: XCTestCase {
    func testEveryParameterIsReportedOnceWithItsFinalGradient() throws {
        // Concat (GoogLeNet, DenseNet), Residual with and without a shortcut (ResNet), plain chains.
        for (name, side) in [("lenet-bn", 28), ("googlenet", 32), ("resnet18", 32), ("densenet", 32), ("nin", 96),
                             ("se-resnet18", 32), ("preact-resnet18", 32), ("cifar-cnn", 32),
                             // Bottlenecks, separable convolutions, SE gates, stochastic depth, nested concatenations.
                             ("resnet50", 32), ("xception", 32), ("mobilenet-v3-small", 32), ("mobilenet-v3-large", 32),
                             ("efficientnet-b0", 32), ("efficientnet-v2-s", 32), ("inception-v3", 75)] {
            let network = try ModelZoo.make(name)
            network.initialize(.xavier, seed: 3)
            let batch = 2
            let images = Tensor(zeros: Shape(batch, 1, side, side))
            var rng = SeededGenerator(seed: 4)
            for i in 0..<images.count { images.data[i] = rng.uniform(0, 1) }
            let logits = network.forward(images, mode: .training)
            let gradLogits = Tensor(zeros: logits.shape)
            for i in 0..<gradLogits.count { gradLogits.data[i] = rng.uniform(-1, 1) }

            var reported = Array(repeating: 0, count: network.parameters.count)
            var atReport = Array(repeating: [Real](), count: network.parameters.count)
            network.gradientsReady = { ready in
                for p in ready {
                    reported[p] += 1
                    atReport[p] = network.parameters[p].parameter.grad.array
                }
            }
            network.zeroGradients()
            network.backward(images, gradLogits)
            network.gradientsReady = nil

            for (p, entry) in network.parameters.enumerated() {
                XCTAssertEqual(reported[p], 1, "\(name) \(entry.key): reported \(reported[p]) times")
                XCTAssertEqual(atReport[p], entry.parameter.grad.array, "\(name) \(entry.key): gradient changed after it was reported")
            }
        }
    }
}
