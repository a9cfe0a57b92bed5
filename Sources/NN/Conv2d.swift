/// 2-D convolution over NCHW input with square kernel, stride and zero padding, as
/// im2col + sgemm (backward: sgemm for the weight gradient, sgemm + col2im for the input
/// gradient). Weight [out, in, k, k], bias [out], as in PyTorch.
///
/// Images with a small output plane are convolved several at a time: their columns are
/// unfolded side by side so that one GEMM sees at least `minimumColumns` columns. One image
/// at a time, a late ResNet stage (3×3 outputs, 4608-long patches) is a matrix–vector
/// product that rereads 9 MB of weights per image.
public final class Conv2d: Layer {
    public let inChannels: Int, outChannels: Int
    public let window: Window2D
    public let weight: Parameter
    public let bias: Parameter?
    /// The first layer of a network need not compute a gradient for the image.
    public var computesInputGradient = true

    private var output: Tensor?, gradInput: Tensor?, columns: Tensor?
    /// The GEMM's output (forward) or the gathered output gradient (backward) of a group of
    /// images, [out, images·Ho·Wo]; unused when images go one at a time.
    private var groupRows: Tensor?

    /// ResNet-18 training at side 96 (bench, SkylakeX kernel): 31.9 images/s one image at a
    /// time, 44.0 from 256 columns, no further gain up to 4096.
    public static let minimumColumns = 1024

    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        window = Window2D(kernel: kernel, stride: stride, padding: padding)
        let fanIn = inChannels * kernel * kernel
        weight = Parameter("weight", shape: Shape(outChannels, inChannels, kernel, kernel),
                           role: .weight(fanIn: fanIn, fanOut: outChannels * kernel * kernel))
        self.bias = bias ? Parameter("bias", shape: Shape(outChannels), role: .bias(fanIn: fanIn)) : nil
    }

    public var summary: String {
        "Conv2d(\(inChannels)→\(outChannels), k\(window.kernel) s\(window.stride) p\(window.padding))"
    }
    public var parameters: [Parameter] { [weight] + (bias.map { [$0] } ?? []) }

    /// A 1×1 convolution with stride 1 and no padding reads its input as the column matrix.
    private var isPointwise: Bool { window.kernel == 1 && window.stride == 1 && window.padding == 0 }

    public func outputShape(for input: Shape) throws -> Shape {
        guard input.rank == 4 else { throw ShapeError(layer: summary, "expects N×C×H×W input, got \(input)") }
        guard input[1] == inChannels else {
            throw ShapeError(layer: summary, "expects \(inChannels) input channels, got \(input[1]) (input \(input))")
        }
        let h = window.outputSide(input[2]), w = window.outputSide(input[3])
        guard h > 0 && w > 0 else {
            throw ShapeError(layer: summary, "input \(input[2])×\(input[3]) is too small for kernel \(window.kernel) with padding \(window.padding)")
        }
        return Shape(input[0], outChannels, h, w)
    }

    public func flops(for input: Shape) -> Int {
        guard let out = try? outputShape(for: input) else { return 0 }
        return 2 * out.count * inChannels * window.kernel * window.kernel
    }

    /// How many images one GEMM covers, given the output plane Ho·Wo.
    private func imagesPerGEMM(batch: Int, plane: Int) -> Int {
        min(batch, max(1, (Self.minimumColumns + plane - 1) / plane))
    }

    // x: (N, C, H, W) -> y: (N, O, Ho, Wo)
    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let n = input.shape[0], h = input.shape[2], w = input.shape[3]
        let outH = window.outputSide(h), outW = window.outputSide(w)
        let y = Tensor.reuse(&output, shape: Shape(n, outChannels, outH, outW))
        let plane = outH * outW, patch = inChannels * window.kernel * window.kernel
        let group = imagesPerGEMM(batch: n, plane: plane), columnCount = group * plane
        let col = isPointwise && group == 1 ? nil : Tensor.reuse(&columns, shape: Shape(patch, columnCount))
        let rows = group == 1 ? nil : Tensor.reuse(&groupRows, shape: Shape(outChannels, columnCount))
        let wp = weight.value.data
        for first in stride(from: 0, to: n, by: group) {
            let images = first..<min(n, first + group)
            let cols = unfold(input, images: images, into: col, columnCount: columnCount)
            let out = rows?.data ?? y.data + first * outChannels * plane
            BLAS.gemm(m: outChannels, n: images.count * plane, k: patch, a: wp, lda: patch, b: cols, ldb: columnCount,
                      c: out, ldc: columnCount)
            for (g, i) in images.enumerated() {
                let image = y.data + i * outChannels * plane
                if let rows { copyPlanes(image: image, rows: rows.data + g * plane, rowStride: columnCount, plane: plane, toRows: false) }
                guard let bias else { continue }
                let bp = bias.value.data
                for o in 0..<outChannels {
                    let row = image + o * plane, v = bp[o]
                    for j in 0..<plane { row[j] += v }
                }
            }
        }
        return y
    }

    /// The column matrix of the images: unfolded side by side into `columns`, or the image
    /// itself for a pointwise convolution of one image at a time (which passes no buffer).
    private func unfold(_ input: Tensor, images: Range<Int>, into columns: Tensor?, columnCount: Int) -> UnsafePointer<Real> {
        let h = input.shape[2], w = input.shape[3], imageSize = inChannels * h * w
        guard let columns else { return UnsafePointer(input.data + images.lowerBound * imageSize) }
        let plane = window.outputSide(h) * window.outputSide(w)
        for (g, i) in images.enumerated() {
            im2col(input.data + i * imageSize, channels: inChannels, height: h, width: w, window: window,
                   into: columns.data + g * plane, leadingDimension: columnCount)
        }
        return UnsafePointer(columns.data)
    }

    /// Copies an image's `outChannels` planes (contiguous) into its block of a group's rows
    /// (`rowStride` apart), or back.
    private func copyPlanes(image: UnsafeMutablePointer<Real>, rows: UnsafeMutablePointer<Real>, rowStride: Int,
                            plane: Int, toRows: Bool) {
        for o in 0..<outChannels {
            let planeStart = image + o * plane, rowStart = rows + o * rowStride
            if toRows { rowStart.update(from: planeStart, count: plane) } else { planeStart.update(from: rowStart, count: plane) }
        }
    }

    public func backward(_ input: Tensor, _ gradOutput: Tensor) -> Tensor {
        let n = input.shape[0], h = input.shape[2], w = input.shape[3], imageSize = inChannels * h * w
        let plane = gradOutput.shape[2] * gradOutput.shape[3], patch = inChannels * window.kernel * window.kernel
        let group = imagesPerGEMM(batch: n, plane: plane), columnCount = group * plane
        let dx = Tensor.reuse(&gradInput, shape: input.shape)
        let col = isPointwise && group == 1 ? nil : Tensor.reuse(&columns, shape: Shape(patch, columnCount))
        let rows = group == 1 ? nil : Tensor.reuse(&groupRows, shape: Shape(outChannels, columnCount))
        let wp = weight.value.data, dw = weight.grad.data
        for first in stride(from: 0, to: n, by: group) {
            let images = first..<min(n, first + group), width = images.count * plane
            let dy: UnsafePointer<Real>
            if let rows {
                for (g, i) in images.enumerated() {
                    copyPlanes(image: gradOutput.data + i * outChannels * plane, rows: rows.data + g * plane,
                               rowStride: columnCount, plane: plane, toRows: true)
                }
                dy = UnsafePointer(rows.data)
            } else {
                dy = UnsafePointer(gradOutput.data + first * outChannels * plane)
            }
            // dW += dY · colsᵀ (the columns are unfolded again rather than kept from forward)
            let cols = unfold(input, images: images, into: col, columnCount: columnCount)
            BLAS.gemm(transB: true, m: outChannels, n: patch, k: width, a: dy, lda: columnCount, b: cols, ldb: columnCount,
                      beta: 1, c: dw, ldc: patch)
            if let bias {
                let db = bias.grad.data
                for o in 0..<outChannels {
                    let row = dy + o * columnCount
                    var s: Double = 0
                    for j in 0..<width { s += Double(row[j]) }
                    db[o] += Real(s)
                }
            }
            guard computesInputGradient else { continue }
            // dcols = Wᵀ · dY, folded back onto each image.
            if let col {
                BLAS.gemm(transA: true, m: patch, n: width, k: outChannels, a: wp, lda: patch, b: dy, ldb: columnCount,
                          c: col.data, ldc: columnCount)
                for (g, i) in images.enumerated() {
                    let dImage = dx.data + i * imageSize
                    dImage.update(repeating: 0, count: imageSize)
                    col2im(col.data + g * plane, channels: inChannels, height: h, width: w, window: window,
                           into: dImage, leadingDimension: columnCount)
                }
            } else {
                BLAS.gemm(transA: true, m: patch, n: plane, k: outChannels, a: wp, lda: patch, b: dy, ldb: plane,
                          c: dx.data + first * imageSize, ldc: plane)
            }
        }
        return dx
    }
}
