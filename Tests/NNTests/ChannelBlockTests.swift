import NN
import XCTest

/// Batch norm reads oneDNN's channel blocks (nChw8c, nChw16c) as it reads NCHW: the same
/// values in training and evaluation, with and without the fused ReLU, forward and backward.
final class ChannelBlockTests: XCTestCase {
    /// conv-free: a network of BN (→ ReLU, which the network fuses into it), its parameters
    /// and running statistics random. Inputs and output gradients are multiples of 1/8 in
    /// [−4, 4]: their sums and sums of squares are exact in float64 in any order, so both
    /// layouts compute the same statistics, and the forward results agree bit for bit.
    private func batchNorm(relu: Bool, channels: Int, seed: UInt64) -> Network {
        let layers: [any Layer] = relu ? [BatchNorm(channels), Activation(.relu)] : [BatchNorm(channels)]
        let network = Network(name: "bn", root: Sequential(layers), inputChannels: channels, classes: channels)
        var rng = SeededGenerator(seed: seed)
        for (_, p) in network.parameters { for i in 0..<p.value.count { p.value.data[i] = rng.uniform(0.5, 2) } }
        for t in network.statistics { for i in 0..<t.count { t.data[i] = rng.uniform(0.5, 1.5) } }
        return network
    }

    private func eighths(_ shape: Shape, seed: UInt64) -> Tensor {
        var rng = SeededGenerator(seed: seed)
        return Tensor(shape: shape, values: (0..<shape.count).map { _ in Real(Int(rng.uniform(-32, 32).rounded())) / 8 })
    }

    func testBatchNormOnChannelBlocksComputesWhatItComputesOnNCHW() throws {
        guard MemoryLayout<Real>.size == 4 else { throw XCTSkip("channel blocks are oneDNN's, float32 only") }
        let shape = Shape(3, 32, 5, 7)
        let x = eighths(shape, seed: 1), dy = eighths(shape, seed: 2)
        for block in [8, 16] {
            for relu in [false, true] {
                for mode in [Mode.training, .evaluation] {
                    let label = "nChw\(block)c, ReLU \(relu), \(mode)"
                    let plain = batchNorm(relu: relu, channels: 32, seed: 3), blocked = batchNorm(relu: relu, channels: 32, seed: 3)
                    let xBlocked = x.converted(to: .channelBlocks(block)), dyBlocked = dy.converted(to: .channelBlocks(block))
                    let y = plain.root.forward(x, mode: mode), yBlocked = blocked.root.forward(xBlocked, mode: mode)
                    XCTAssertEqual(yBlocked.layout, .channelBlocks(block), label)
                    XCTAssertEqual(yBlocked.converted(to: .nchw).array, y.array, "forward, \(label)")
                    XCTAssertEqual(blocked.statistics.map(\.array), plain.statistics.map(\.array), "running statistics, \(label)")

                    let dx = plain.root.backward(x, dy), dxBlocked = blocked.root.backward(xBlocked, dyBlocked)
                    XCTAssertEqual(dxBlocked.layout, .channelBlocks(block), label)
                    // Σdy·x̂ adds products of float32 values, exact in float64, in another
                    // order: the float64 sums differ by a few units of 2^-53 of their size at
                    // most, which rounds to the same float32 mean(dy·x̂) unless the sum lies
                    // that close to a float32 rounding boundary (about one chance in 2^28). Then
                    // one channel's dx moves by an ulp of |x̂·mean(dy·x̂)|·γ/σ; allow 2 ulps of
                    // the largest |dx| so that such a flip cannot fail the test.
                    let tolerance = 2 * Real.ulpOfOne * dx.array.map(abs).max()!
                    for (a, b) in zip(dxBlocked.converted(to: .nchw).array, dx.array) {
                        XCTAssertEqual(a, b, accuracy: tolerance, "input gradient, \(label)")
                    }
                    for ((key, p), (_, q)) in zip(plain.parameters, blocked.parameters) {
                        let tolerance = 2 * Real.ulpOfOne * p.grad.array.map(abs).max()!
                        for (a, b) in zip(q.grad.array, p.grad.array) { XCTAssertEqual(a, b, accuracy: tolerance, "\(key) gradient, \(label)") }
                    }
                }
            }
        }
    }

    /// Pooling compares and adds each channel's window in the same order in both layouts:
    /// the same outputs and gradients, bit for bit, ties (values in eighths repeat) and NaN
    /// included, with padding, and windows that overlap (the gradient adds up) or not.
    func testPoolingOnChannelBlocksComputesWhatItComputesOnNCHW() throws {
        guard MemoryLayout<Real>.size == 4 else { throw XCTSkip("channel blocks are oneDNN's, float32 only") }
        let shape = Shape(2, 32, 9, 11)
        let x = eighths(shape, seed: 4)
        x.data[100] = .nan
        for block in [8, 16] {
            for kind in [Pool2d.Kind.max, .average] {
                for (kernel, stride, padding) in [(3, 2, 1), (3, 1, 0), (2, 2, 0)] {
                    let label = "\(kind) k\(kernel) s\(stride) p\(padding), nChw\(block)c"
                    let plain = Pool2d(kind, kernel: kernel, stride: stride, padding: padding)
                    let blocked = Pool2d(kind, kernel: kernel, stride: stride, padding: padding)
                    XCTAssertTrue(blocked.reads(.channelBlocks(block), shape: shape))
                    let xBlocked = x.converted(to: .channelBlocks(block))
                    let y = plain.forward(x, mode: .training), yBlocked = blocked.forward(xBlocked, mode: .training)
                    XCTAssertEqual(yBlocked.layout, .channelBlocks(block), label)
                    XCTAssertEqual(yBlocked.converted(to: .nchw).array.map(\.bitPattern), y.array.map(\.bitPattern), "forward, \(label)")
                    let dy = eighths(y.shape, seed: 5)
                    let dx = plain.backward(x, dy), dxBlocked = blocked.backward(xBlocked, dy.converted(to: .channelBlocks(block)))
                    XCTAssertEqual(dxBlocked.layout, .channelBlocks(block), label)
                    XCTAssertEqual(dxBlocked.converted(to: .nchw).array.map(\.bitPattern), dx.array.map(\.bitPattern), "backward, \(label)")
                }
            }
        }
    }

    func testLayoutConversionRoundTripsAndPlacesChannelsInBlocks() throws {
        guard MemoryLayout<Real>.size == 4 else { throw XCTSkip("channel blocks are oneDNN's, float32 only") }
        let shape = Shape(2, 32, 3, 2)
        let x = Tensor(shape: shape, values: (0..<shape.count).map(Real.init))
        let blocked = x.converted(to: .channelBlocks(16))
        // Element (n, c, h, w) of nChw16c sits at ((n·C/16 + c/16)·H·W + h·W + w)·16 + c % 16.
        for (n, c, h, w) in [(0, 0, 0, 0), (0, 17, 2, 1), (1, 5, 1, 0), (1, 31, 2, 1)] {
            let at = ((n * 2 + c / 16) * 6 + h * 2 + w) * 16 + c % 16
            XCTAssertEqual(blocked.data[at], x.data[((n * 32 + c) * 3 + h) * 2 + w], "(\(n), \(c), \(h), \(w))")
        }
        XCTAssertEqual(blocked.converted(to: .nchw).array, x.array)
        XCTAssertEqual(blocked.converted(to: .channelBlocks(8)).converted(to: .nchw).array, x.array)
    }
}
