import DNNL
import XCTest

/// What oneDNN chooses for ResNet-18's convolutions: the backward passes must use the
/// forward's activation layouts (so one buffer layout serves activations and their
/// gradients). Prints the implementations and layouts (recorded in the module's report).
final class LayoutChoiceTests: DNNLTestCase {
    func testResNet18ConvolutionsShareActivationLayoutsAcrossPasses() throws {
        let shapes = [
            ConvolutionGeometry(batch: 64, inputChannels: 3, height: 96, width: 96, outputChannels: 64, kernel: 7, stride: 2, padding: 3, hasBias: false),
            ConvolutionGeometry(batch: 64, inputChannels: 64, height: 24, width: 24, outputChannels: 64, kernel: 3, padding: 1, hasBias: false),
            ConvolutionGeometry(batch: 64, inputChannels: 64, height: 24, width: 24, outputChannels: 128, kernel: 3, stride: 2, padding: 1, hasBias: false),
            ConvolutionGeometry(batch: 64, inputChannels: 64, height: 24, width: 24, outputChannels: 128, kernel: 1, stride: 2, hasBias: false),
            ConvolutionGeometry(batch: 64, inputChannels: 256, height: 6, width: 6, outputChannels: 512, kernel: 3, stride: 2, padding: 1, hasBias: false),
        ]
        for dataType in dataTypes {
            for g in shapes {
                let c = try Convolution(g, dataType: dataType)
                let names = c.implementations
                print("\(dataType) \(g): fwd \(names.forward) src \(c.forwardSource.layout) wei \(c.forwardWeights.layout) dst \(c.forwardDestination.layout);"
                      + " bwd-data \(names.backwardData!) wei \(c.backwardDataWeights!.layout) diff_src \(c.backwardDataDiffSource!.layout);"
                      + " bwd-weights \(names.backwardWeights!) diff_wei \(c.backwardWeightsDiffWeights!.layout)")
                XCTAssertEqual(c.backwardWeightsSource, c.forwardSource, "\(dataType) \(g)")
                XCTAssertEqual(c.backwardDataDiffDestination, c.forwardDestination, "\(dataType) \(g)")
                XCTAssertEqual(c.backwardWeightsDiffDestination, c.forwardDestination, "\(dataType) \(g)")
                if g.inputChannels > 3 { XCTAssertEqual(c.backwardDataDiffSource, c.forwardSource, "\(dataType) \(g)") }
            }
        }
    }

    /// LeNet's convolutions (1→6 and 6→16 channels): with the backward passes pinned to the
    /// forward's plain nchw source, oneDNN 2.6.3 has only `ref:any` for them (50× slower than
    /// its jit kernels). Every pass must get a jit kernel, in whatever layout it needs
    /// (seen on AVX-512 and, with DNNL_MAX_CPU_ISA=AVX2, on AVX2).
    func testLeNetConvolutionsRunNoReferenceKernel() throws {
        let shapes = [
            ConvolutionGeometry(batch: 64, inputChannels: 1, height: 28, width: 28, outputChannels: 6, kernel: 5, padding: 2, hasBias: true),
            ConvolutionGeometry(batch: 64, inputChannels: 6, height: 14, width: 14, outputChannels: 16, kernel: 5, hasBias: true),
        ]
        for g in shapes {
            let names = try Convolution(g).implementations
            for (pass, name) in [("forward", names.forward), ("backward data", names.backwardData!), ("backward weights", names.backwardWeights!)] {
                XCTAssertFalse(name.hasPrefix("ref"), "\(g) \(pass): \(name)")
            }
        }
    }
}
