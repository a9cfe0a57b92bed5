/// Sums batch norm needs from the whole global batch. Handed to `BatchNorm` by the layer
/// above NN that knows about other processes (synchronized batch norm); NN itself never
/// talks to them.
public protocol BatchStatisticsReducer: AnyObject {
    /// Replaces `values` by their sum over every process, in place.
    func sumAcrossReplicas(_ values: UnsafeMutableBufferPointer<Double>)
}

/// Batch normalization over [N, C] or [N, C, H, W], PyTorch's way: training normalizes by
/// the batch's mean and biased variance and moves the running statistics by `momentum`
/// (the running variance takes the unbiased batch variance); evaluation uses the running
/// statistics.
public final class BatchNorm: Layer {
    public let channels: Int
    public let eps: Real, momentum: Real
    public let weight: Parameter, bias: Parameter
    public let runningMean: Tensor, runningVar: Tensor
    public var numBatchesTracked: Int64 = 0
    /// Set for synchronized batch norm; nil normalizes over the local batch.
    public var reducer: BatchStatisticsReducer?

    private var output: Tensor?, gradInput: Tensor?
    /// Per channel: the mean and 1/σ used by the last forward.
    private let mean: UnsafeMutablePointer<Real>, invStd: UnsafeMutablePointer<Real>
    /// Scratch for per-channel sums; two slots per channel plus the element count.
    private let sums: UnsafeMutableBufferPointer<Double>
    private var lastMode = Mode.training

    public init(_ channels: Int, eps: Real = 1e-5, momentum: Real = 0.1) {
        self.channels = channels
        self.eps = eps
        self.momentum = momentum
        weight = Parameter("weight", shape: Shape(channels), role: .scale)
        bias = Parameter("bias", shape: Shape(channels), role: .shift)
        runningMean = Tensor(zeros: Shape(channels))
        runningVar = Tensor(zeros: Shape(channels))
        runningVar.fill(1)
        mean = .allocate(capacity: channels)
        invStd = .allocate(capacity: channels)
        sums = .allocate(capacity: 2 * channels + 1)
    }

    deinit {
        mean.deallocate()
        invStd.deallocate()
        sums.deallocate()
    }

    public var summary: String { "BatchNorm(\(channels))" }
    public var parameters: [Parameter] { [weight, bias] }

    public func outputShape(for input: Shape) throws -> Shape {
        guard (input.rank == 2 || input.rank == 4) && input[1] == channels else {
            throw ShapeError(layer: summary, "expects N×\(channels) or N×\(channels)×H×W input, got \(input)")
        }
        return input
    }

    public func flops(for input: Shape) -> Int { 2 * input.count }

    /// Elements per channel per example (H·W, or 1 for [N, C]).
    private func area(_ shape: Shape) -> Int { shape.rank == 4 ? shape[2] * shape[3] : 1 }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let n = input.shape[0], area = area(input.shape)
        let y = Tensor.reuse(&output, shape: input.shape)
        lastMode = mode
        if mode == .training {
            // Σx and Σx² per channel, then (for sync BN) over every replica.
            for c in 0..<channels {
                var s: Double = 0, sq: Double = 0
                for i in 0..<n {
                    let x = input.data + (i * channels + c) * area
                    for j in 0..<area {
                        let v = Double(x[j])
                        s += v
                        sq += v * v
                    }
                }
                sums[c] = s
                sums[channels + c] = sq
            }
            sums[2 * channels] = Double(n * area)
            reducer?.sumAcrossReplicas(sums)
            let count = sums[2 * channels]
            let unbiased = count > 1 ? count / (count - 1) : 1
            let m = Double(momentum)
            for c in 0..<channels {
                let mu = sums[c] / count
                let variance = max(sums[channels + c] / count - mu * mu, 0)
                mean[c] = Real(mu)
                invStd[c] = Real(1 / (variance + Double(eps)).squareRoot())
                runningMean.data[c] = Real((1 - m) * Double(runningMean.data[c]) + m * mu)
                runningVar.data[c] = Real((1 - m) * Double(runningVar.data[c]) + m * variance * unbiased)
            }
            numBatchesTracked += 1
        } else {
            for c in 0..<channels {
                mean[c] = runningMean.data[c]
                invStd[c] = Real(1 / (Double(runningVar.data[c]) + Double(eps)).squareRoot())
            }
        }
        let gamma = weight.value.data, beta = bias.value.data
        for i in 0..<n {
            for c in 0..<channels {
                let x = input.data + (i * channels + c) * area, out = y.data + (i * channels + c) * area
                let scale = gamma[c] * invStd[c], shift = beta[c] - mean[c] * scale
                for j in 0..<area { out[j] = x[j] * scale + shift }
            }
        }
        return y
    }

    /// Training: dx = γ/σ · (dy − mean(dy) − x̂ · mean(dy · x̂)), the means over the (global) batch.
    /// Evaluation: the statistics are constants, dx = γ/σ · dy.
    public func backward(_ input: Tensor, _ gradOutput: Tensor) -> Tensor {
        let n = input.shape[0], area = area(input.shape)
        let dx = Tensor.reuse(&gradInput, shape: input.shape)
        for c in 0..<channels {
            var sumDy: Double = 0, sumDyXhat: Double = 0
            let mu = mean[c], inv = invStd[c]
            for i in 0..<n {
                let x = input.data + (i * channels + c) * area, dy = gradOutput.data + (i * channels + c) * area
                for j in 0..<area {
                    sumDy += Double(dy[j])
                    sumDyXhat += Double(dy[j]) * Double((x[j] - mu) * inv)
                }
            }
            weight.grad.data[c] += Real(sumDyXhat)
            bias.grad.data[c] += Real(sumDy)
            sums[c] = sumDy
            sums[channels + c] = sumDyXhat
        }
        let gamma = weight.value.data
        if lastMode == .training {
            sums[2 * channels] = Double(n * area)
            reducer?.sumAcrossReplicas(sums)
            let count = sums[2 * channels]
            for c in 0..<channels {
                let mu = mean[c], inv = invStd[c], scale = gamma[c] * inv
                let meanDy = Real(sums[c] / count), meanDyXhat = Real(sums[channels + c] / count)
                for i in 0..<n {
                    let x = input.data + (i * channels + c) * area, dy = gradOutput.data + (i * channels + c) * area
                    let g = dx.data + (i * channels + c) * area
                    for j in 0..<area { g[j] = scale * (dy[j] - meanDy - (x[j] - mu) * inv * meanDyXhat) }
                }
            }
        } else {
            for c in 0..<channels {
                let scale = gamma[c] * invStd[c]
                for i in 0..<n {
                    let dy = gradOutput.data + (i * channels + c) * area, g = dx.data + (i * channels + c) * area
                    for j in 0..<area { g[j] = scale * dy[j] }
                }
            }
        }
        return dx
    }
}
