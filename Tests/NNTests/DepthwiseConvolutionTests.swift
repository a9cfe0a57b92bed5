import NN
import XCTest

/// Depthwise convolutions whose weight gradient oneDNN 2.6.3 offers only as its reference
/// kernel on AVX2 (5×5, as in EfficientNet and MobileNetV3) run forward and input gradient on
/// oneDNN and compute the weight gradient themselves. They must give what the BLAS engine
/// gives, to rounding.
final class DepthwiseConvolutionTests: XCTestCase {
    private func values(_ t: Tensor) -> [Real] { Array(UnsafeBufferPointer(start: t.data, count: t.count)) }

    private func make(_ channels: Int, multiplier: Int, window: Window2D, bias: Bool, from source: Conv2d? = nil,
                      absolute: Bool = false) -> Conv2d {
        let conv = Conv2d(channels, channels * multiplier, window: window, groups: channels, bias: bias)
        var rng = SeededGenerator(seed: 21)
        for (i, p) in conv.parameters.enumerated() {
            for j in 0..<p.value.count {
                let v = source.map { $0.parameters[i].value.data[j] } ?? rng.uniform(-0.5, 0.5)
                p.value.data[j] = absolute ? abs(v) : v
            }
        }
        return conv
    }

    func testDepthwiseConvolutionsMatchTheBLASEngine() throws {
        try XCTSkipUnless(ConvolutionEngine.isAvailable(.dnnl), "oneDNN runs in the float32 build only")
        let cases: [(window: Window2D, multiplier: Int, bias: Bool)] = [
            (Window2D(kernel: 5, stride: 1, padding: 2), 1, false),
            (Window2D(kernel: 5, stride: 2, padding: 2), 1, true),
            (Window2D(kernel: 3, stride: 2, padding: 2, dilation: 2), 2, true),
            (Window2D(height: .init(kernel: 5, stride: 2, padding: 1), width: .init(kernel: 3, stride: 1, padding: 1)), 1, false),
        ]
        let (n, channels, side) = (3, 12, 13)  // 12: one block of 8 channels and a partial one
        for (window, multiplier, bias) in cases {
            let what = "\(window) ×\(multiplier)"
            let x = Inputs.uniform(Shape(n, channels, side, side), seed: 22)
            let onOneDNN = make(channels, multiplier: multiplier, window: window, bias: bias)
            let (y, dx) = ConvolutionEngine.using(.dnnl) { () -> ([Real], [Real]) in
                let y = onOneDNN.forward(x, mode: .training)
                return (values(y), values(onOneDNN.backward(x, Inputs.uniform(y.shape, seed: 23))))
            }
            XCTAssertTrue(onOneDNN.ranOnOneDNN, "\(what): should run on oneDNN")
            let onBLAS = make(channels, multiplier: multiplier, window: window, bias: bias, from: onOneDNN)
            let magnitude = make(channels, multiplier: multiplier, window: window, bias: bias, from: onOneDNN, absolute: true)
            let absX = Tensor(shape: x.shape, values: values(x).map { abs($0) })
            let (expectedY, expectedDX, boundY, boundDX) = ConvolutionEngine.using(.blas) { () -> ([Real], [Real], [Real], [Real]) in
                let y = onBLAS.forward(x, mode: .training), dy = Inputs.uniform(y.shape, seed: 23)
                let absDy = Tensor(shape: dy.shape, values: values(dy).map { abs($0) })
                return (values(y), values(onBLAS.backward(x, dy)),
                        values(magnitude.forward(absX, mode: .training)), values(magnitude.backward(absX, absDy)))
            }
            let taps = window.taps, plane = n * (y.count / (n * channels * multiplier))
            assertEqualWithinRounding(y, expectedY, magnitude: boundY, terms: taps + 1, "\(what) y")
            assertEqualWithinRounding(dx, expectedDX, magnitude: boundDX, terms: taps * multiplier, "\(what) dx")
            assertEqualWithinRounding(values(onOneDNN.weight.grad), values(onBLAS.weight.grad), magnitude: values(magnitude.weight.grad),
                                      terms: plane, "\(what) dweight")
            if bias {
                assertEqualWithinRounding(values(onOneDNN.bias!.grad), values(onBLAS.bias!.grad), magnitude: values(magnitude.bias!.grad),
                                          terms: plane, "\(what) dbias")
            }
        }
    }
}
