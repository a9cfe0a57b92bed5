import CKernels
import Tensor

/// The weight (and bias) gradient of a convolution whose groups each read one input channel
/// (depthwise, with any channel multiplier), computed directly from NCHW x and dy.
///
/// oneDNN 2.6.3 has no optimized backward-weights kernel for some depthwise shapes on AVX2
/// (5×5, as in EfficientNet and MobileNetV3), only its reference one; without this the whole
/// convolution fell back to im2col + one GEMM per channel. The sums run in C
/// (`cnn_depthwise_weight_gradient_f32`), eight channels to a vector; each channel's are
/// done by one thread in a fixed order, so the result does not depend on the thread count.
final class DepthwiseWeightGradient {
    /// The convolution, for the input shape its oneDNN plan was made for.
    private let shape: cnn_depthwise_shape
    private let outChannels: Int
    /// Floats of scratch each thread needs (channels-last copies of x and dy).
    private let perThread: Int
    /// One scratch per thread of the team, made with the plan and remade only if the thread
    /// count changes: a warm training step allocates nothing.
    private var workspace: UnsafeMutablePointer<Float>, workspaceThreads: Int

    init(window: Window2D, outChannels: Int, inChannels: Int, input: Shape) {
        let (rows, columns) = (window.height, window.width)
        let output = window.outputSize(height: input[2], width: input[3])
        var shape = cnn_depthwise_shape(
            images: input[0], channels: inChannels, multiplier: outChannels / inChannels,
            height: input[2], width: input[3], out_height: output.height, out_width: output.width,
            kernel_h: rows.kernel, kernel_w: columns.kernel, stride_h: rows.stride, stride_w: columns.stride,
            padding_h: rows.padding, padding_w: columns.padding, dilation_h: rows.dilation, dilation_w: columns.dilation)
        perThread = cnn_depthwise_workspace(&shape)
        (self.shape, self.outChannels) = (shape, outChannels)
        workspaceThreads = Parallel.threads
        workspace = .allocate(capacity: perThread * workspaceThreads)
    }

    deinit { workspace.deallocate() }

    /// Adds dW [O, 1, kh, kw] and, when given, db [O] for x [N, C, H, W] and dy [N, O, Ho, Wo].
    func accumulate(x: Tensor, dy: Tensor, weightGrad: UnsafeMutablePointer<Real>, biasGrad: UnsafeMutablePointer<Real>?) {
        #if CNN_FLOAT64
        preconditionFailure("oneDNN's convolutions, the only users of this kernel, run in the float32 build only")
        #else
        if Parallel.threads != workspaceThreads {
            workspace.deallocate()
            workspaceThreads = Parallel.threads
            workspace = .allocate(capacity: perThread * workspaceThreads)
        }
        let lanes = cnn_depthwise_lanes, blocks = (outChannels + lanes - 1) / lanes
        let pass = Pass(shape: shape, x: x.data, dy: dy.data, dW: weightGrad, db: biasGrad, workspace: workspace, perThread: perThread)
        Parallel.forEach(blocks, grain: 1, pass) { arguments, first, last in
            let pass = Parallel.arguments(arguments, as: Pass.self)
            let scratch = pass.workspace + Parallel.threadIndex * pass.perThread
            withUnsafePointer(to: pass.shape) { cnn_depthwise_weight_gradient_f32($0, pass.x, pass.dy, pass.dW, pass.db, first, last, scratch) }
        }
        #endif
    }

    #if !CNN_FLOAT64
    private struct Pass {
        let shape: cnn_depthwise_shape
        let x: UnsafeMutablePointer<Float>, dy: UnsafeMutablePointer<Float>
        let dW: UnsafeMutablePointer<Float>, db: UnsafeMutablePointer<Float>?
        let workspace: UnsafeMutablePointer<Float>, perThread: Int
    }
    #endif
}
