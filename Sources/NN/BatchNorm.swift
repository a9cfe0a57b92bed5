import CKernels

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
    /// Set by `Network` where a ReLU of its own follows in the same sequence: the output is
    /// then max(y, 0) and backward masks the gradient by it, one pass over the data fewer
    /// each way; the ReLU passes its input through (bit for bit the same results).
    public internal(set) var fusedReLU = false

    private var output: Tensor?
    /// Per channel: the mean and 1/σ used by the last forward.
    private let mean: UnsafeMutablePointer<Real>, invStd: UnsafeMutablePointer<Real>
    /// Scratch for per-channel sums; two slots per channel plus the element count.
    private let sums: UnsafeMutableBufferPointer<Double>
    /// Per channel, for channel-blocked data: the scale and shift of the normalization, and
    /// the two means of the input gradient.
    private let laneConstants: UnsafeMutablePointer<Real>
    private var lastMode = Mode.training

    public var buffers: [Buffer] {
        [Buffer("running_mean", .statistic(runningMean, initial: 0)), Buffer("running_var", .statistic(runningVar, initial: 1)),
         Buffer("num_batches_tracked", .counter(get: { [unowned self] in numBatchesTracked },
                                                set: { [unowned self] in numBatchesTracked = $0 }))]
    }

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
        laneConstants = .allocate(capacity: 4 * channels)
    }

    deinit {
        mean.deallocate()
        invStd.deallocate()
        sums.deallocate()
        laneConstants.deallocate()
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

    /// NCHW, and in the float32 build oneDNN's channel blocks (`Sources/CKernels/channelblocks.c`).
    public func reads(_ layout: ActivationLayout, shape: Shape) -> Bool {
        layout == .nchw || (shape.rank == 4 && layout.hasOwnKernels)
    }

    /// Elements per channel per example (H·W, or 1 for [N, C]).
    private func area(_ shape: Shape) -> Int { shape.rank == 4 ? shape[2] * shape[3] : 1 }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let n = input.shape[0], area = area(input.shape)
        let y = Tensor.reuse(&output, shape: input.shape, layout: input.layout)
        lastMode = mode
        let pass = Pass(self, n: n, area: area, block: input.layout.block, x: input.data, y: y.data)
        if mode == .training {
            // Σx and Σx² per channel, then (for sync BN) over every replica.
            pass.forEachChannel(work: n * area, .sumInputs)
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
        pass.forEachPlane(.normalize)
        return y
    }

    /// Training: dx = γ/σ · (dy − mean(dy) − x̂ · mean(dy · x̂)), the means over the (global) batch.
    /// Evaluation: the statistics are constants, dx = γ/σ · dy.
    public func backward(_ input: Tensor, _ gradOutput: Tensor) -> Tensor {
        let n = input.shape[0], area = area(input.shape)
        precondition(gradOutput.layout == input.layout, "BatchNorm: gradient in \(gradOutput.layout), input in \(input.layout)")
        let dx = Workspace.tensor(input.shape, layout: input.layout)
        let pass = Pass(self, n: n, area: area, block: input.layout.block, x: input.data, y: output!.data,
                        dy: gradOutput.data, dx: dx.data)
        pass.forEachChannel(work: 2 * n * area, .sumGradients)
        if lastMode == .training {
            sums[2 * channels] = Double(n * area)
            reducer?.sumAcrossReplicas(sums)
        }
        pass.forEachPlane(.inputGradient)
        return dx
    }

    /// One pass of batch norm over [N, C, area] data, or over channel blocks of `block`
    /// channels ([N, C/block, area, block]), split over channels or channel blocks (the sums)
    /// or over planes (example, channel or channel block) for the elementwise parts. Every
    /// element's arithmetic is the same on any split.
    private struct Pass {
        let n: Int, channels: Int, area: Int, block: Int, training: Bool, relu: Bool
        let gamma: UnsafeMutablePointer<Real>, beta: UnsafeMutablePointer<Real>
        let dGamma: UnsafeMutablePointer<Real>, dBeta: UnsafeMutablePointer<Real>
        let mean: UnsafeMutablePointer<Real>, invStd: UnsafeMutablePointer<Real>
        let sums: UnsafeMutableBufferPointer<Double>
        /// Per channel: scale, shift, mean(dy) and mean(dy·x̂), C apart (channel blocks only).
        let laneConstants: UnsafeMutablePointer<Real>
        let x: UnsafeMutablePointer<Real>
        var y: UnsafeMutablePointer<Real>? = nil, dy: UnsafeMutablePointer<Real>? = nil, dx: UnsafeMutablePointer<Real>? = nil

        init(_ layer: BatchNorm, n: Int, area: Int, block: Int, x: UnsafeMutablePointer<Real>, y: UnsafeMutablePointer<Real>? = nil,
             dy: UnsafeMutablePointer<Real>? = nil, dx: UnsafeMutablePointer<Real>? = nil) {
            (self.n, channels, self.area, self.block) = (n, layer.channels, area, block)
            (training, relu) = (layer.lastMode == .training, layer.fusedReLU)
            (gamma, beta, dGamma, dBeta) = (layer.weight.value.data, layer.bias.value.data, layer.weight.grad.data, layer.bias.grad.data)
            (mean, invStd, sums, laneConstants) = (layer.mean, layer.invStd, layer.sums, layer.laneConstants)
            (self.x, self.y, self.dy, self.dx) = (x, y, dy, dx)
        }

        private var isBlocked: Bool { block > 1 }

        enum Step { case sumInputs, normalize, sumGradients, inputGradient }
        private var step = Step.sumInputs

        /// Runs a step over channels (NCHW) or channel blocks, on every thread.
        func forEachChannel(work: Int, _ step: Step) {
            var pass = self
            pass.step = step
            Parallel.forEach(channels / block, grain: Parallel.grain(work: work * block), pass) { Parallel.arguments($0, as: Pass.self).run($1..<$2) }
        }

        /// Runs a step over planes, (example, channel) or (example, channel block), on every thread.
        func forEachPlane(_ step: Step) {
            if isBlocked { prepareLaneConstants(for: step) }
            var pass = self
            pass.step = step
            Parallel.forEach(n * channels / block, grain: Parallel.grain(work: area * block), pass) { Parallel.arguments($0, as: Pass.self).run($1..<$2) }
        }

        private func run(_ range: Range<Int>) {
            switch step {
            case .sumInputs: sumInputs(range)
            case .normalize: normalize(range)
            case .sumGradients: sumGradients(range)
            case .inputGradient: inputGradient(range)
            }
        }

        /// The per-channel constants of the channel-blocked elementwise passes, computed as the
        /// NCHW loops compute them per plane: the gradient's means only for a training backward.
        private func prepareLaneConstants(for step: Step) {
            let scale = laneConstants, shift = laneConstants + channels
            for c in 0..<channels {
                scale[c] = gamma[c] * invStd[c]
                shift[c] = beta[c] - mean[c] * scale[c]
            }
            guard step == .inputGradient, training else { return }
            let meanDy = laneConstants + 2 * channels, meanDyXhat = laneConstants + 3 * channels
            let count = sums[2 * channels]
            for c in 0..<channels {
                meanDy[c] = Real(sums[c] / count)
                meanDyXhat[c] = Real(sums[channels + c] / count)
            }
        }

        /// Σx and Σx² of each channel into sums[c] and sums[C + c].
        func sumInputs(_ range: Range<Int>) {
            #if !CNN_FLOAT64
            if isBlocked {
                let blocks = channels / block
                for b in range {
                    cnn_blocked_sum_and_squares_f32(x + b * area * block, n, blocks * area * block, area, block,
                                                    sums.baseAddress! + b * block, sums.baseAddress! + channels + b * block)
                }
                return
            }
            #endif
            for c in range {
                var s: Double = 0, sq: Double = 0
                for i in 0..<n {
                    let x = x + (i * channels + c) * area
                    Sums.addSumAndSquares(x, area, sum: &s, squares: &sq)
                }
                sums[c] = s
                sums[channels + c] = sq
            }
        }

        /// y = γ·(x − μ)/σ + β, plane by plane (then max(y, 0) with a fused ReLU).
        func normalize(_ planes: Range<Int>) {
            let y = y!
            #if !CNN_FLOAT64
            if isBlocked {
                let blocks = channels / block
                for p in planes {
                    let lanes = p % blocks * block, at = p * area * block
                    cnn_blocked_normalize_f32(x + at, y + at, area, block, laneConstants + lanes,
                                              laneConstants + channels + lanes, relu ? 1 : 0)
                }
                return
            }
            #endif
            for p in planes {
                let c = p % channels, x = x + p * area, out = y + p * area
                let scale = gamma[c] * invStd[c], shift = beta[c] - mean[c] * scale
                if relu {
                    for j in 0..<area { out[j] = max(x[j] * scale + shift, 0) }
                } else {
                    for j in 0..<area { out[j] = x[j] * scale + shift }
                }
            }
        }

        /// The gradient at the normalized value: dy, or with a fused ReLU dy where the output
        /// is positive and 0 elsewhere (ReLU's own rule; loaded before selecting, to vectorize).
        @inline(__always)
        private func incoming(_ dy: UnsafeMutablePointer<Real>, _ y: UnsafeMutablePointer<Real>, _ j: Int) -> Real {
            let d = dy[j], out = y[j]
            return !relu || out > 0 ? d : 0
        }

        /// Σdy and Σdy·x̂ of each channel: added to the bias and weight gradients, and kept
        /// in sums[c] and sums[C + c] for the input gradient.
        func sumGradients(_ range: Range<Int>) {
            let dy = dy!, y = y!
            #if !CNN_FLOAT64
            if isBlocked {
                let blocks = channels / block
                for b in range {
                    let at = b * area * block, lanes = b * block
                    cnn_blocked_gradient_sums_f32(dy + at, relu ? y + at : nil, x + at, n, blocks * area * block, area, block,
                                                  mean + lanes, invStd + lanes, sums.baseAddress! + lanes,
                                                  sums.baseAddress! + channels + lanes)
                    for c in lanes..<lanes + block {
                        dGamma[c] += Real(sums[channels + c])
                        dBeta[c] += Real(sums[c])
                    }
                }
                return
            }
            #endif
            for c in range {
                var sumDy: Double = 0, sumDyXhat: Double = 0
                let mu = mean[c], inv = invStd[c]
                for i in 0..<n {
                    let x = x + (i * channels + c) * area, dy = dy + (i * channels + c) * area, y = y + (i * channels + c) * area
                    Sums.addNormalizedGradientSums(dy: dy, y: relu ? y : nil, x: x, mean: mu, invStd: inv, area,
                                                   sum: &sumDy, weighted: &sumDyXhat)
                }
                dGamma[c] += Real(sumDyXhat)
                dBeta[c] += Real(sumDy)
                sums[c] = sumDy
                sums[channels + c] = sumDyXhat
            }
        }

        /// Training: dx = γ/σ · (dy − mean(dy) − x̂ · mean(dy · x̂)), the means over the
        /// (global) batch's sums; evaluation: dx = γ/σ · dy.
        func inputGradient(_ planes: Range<Int>) {
            let dy = dy!, dx = dx!, y = y!
            #if !CNN_FLOAT64
            if isBlocked {
                let blocks = channels / block
                for p in planes {
                    let lanes = p % blocks * block, at = p * area * block
                    cnn_blocked_input_gradient_f32(dy + at, relu ? y + at : nil, x + at, dx + at, area, block, laneConstants + lanes,
                                                   mean + lanes, invStd + lanes,
                                                   training ? laneConstants + 2 * channels + lanes : nil,
                                                   laneConstants + 3 * channels + lanes)
                }
                return
            }
            #endif
            for p in planes {
                let c = p % channels, dy = dy + p * area, g = dx + p * area, y = y + p * area
                let scale = gamma[c] * invStd[c]
                guard training else {
                    for j in 0..<area { g[j] = scale * incoming(dy, y, j) }
                    continue
                }
                let count = sums[2 * channels], x = x + p * area, mu = mean[c], inv = invStd[c]
                let meanDy = Real(sums[c] / count), meanDyXhat = Real(sums[channels + c] / count)
                for j in 0..<area { g[j] = scale * (incoming(dy, y, j) - meanDy - (x[j] - mu) * inv * meanDyXhat) }
            }
        }
    }
}
