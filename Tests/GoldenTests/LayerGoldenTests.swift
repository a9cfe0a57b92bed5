import HDF5
import NN
import Optim
import XCTest

/// Every case of layers.h5 against our layers, each value within a bound derived from its
/// arithmetic: our rounding, PyTorch's, and the golden inputs' float32 storage (`Rounding`):
/// - convolution, linear and pooling are linear in each operand: γ_K times the same layer run on
///   absolute values, K the length of each sum;
/// - batch norm, cross-entropy and the optimizers: their formulas evaluated beside a running
///   error bound (`Bounded`), so cancellation (x − μ, softmax − target, 1 − β₂) is charged at
///   the magnitude of what cancels;
/// - activations: a few roundings of one input, at the tensor's scale.
/// Each holds for any BLAS kernel, thread count and evaluation order.
final class LayerGoldenTests: XCTestCase {
    func testEveryGoldenLayerCaseMatchesPyTorch() throws {
        for engine in ConvolutionEngine.available { try ConvolutionEngine.using(engine) { try checkEveryCase() } }
    }

    private func checkEveryCase() throws {
        let file = try Golden.open("layers.h5")
        let cases = try file.root.memberNames()
        XCTAssertGreaterThanOrEqual(cases.count, 30, "layers.h5 should hold every layer case")
        for name in cases {
            let group = try file.root.group(name)
            let op = try group.stringAttribute("op")
            switch op {
            case "conv2d": try checkConv(group, name)
            case "linear": try checkLinear(group, name)
            case "maxpool2d", "avgpool2d": try checkPool(group, name, kind: op == "maxpool2d" ? .max : .average)
            case "global_avgpool": try checkGlobalAveragePool(group, name)
            case "relu": try checkActivation(.relu, group, name)
            case "sigmoid": try checkActivation(.sigmoid, group, name)
            case "tanh": try checkActivation(.tanh, group, name)
            case "gelu": try checkActivation(.gelu, group, name)
            case "batchnorm": try checkBatchNorm(group, name)
            case "cross_entropy": try checkCrossEntropy(group, name)
            case "sgd", "adam", "adamw": try checkOptimizer(group, name, op: op)
            default: XCTFail("\(name): no test for op '\(op)'")
            }
        }
    }

    // MARK: - Linear in each operand

    private func checkConv(_ g: HDF5Group, _ name: String) throws {
        let w = try g.dataset("weight").shape, x = try g.dataset("x").shape
        let kernel = Int(try g.intAttribute("kernel"))
        func make(absolute: Bool) throws -> Conv2d {
            let conv = Conv2d(w[1], w[0], kernel: kernel, stride: Int(try g.intAttribute("stride")),
                              padding: Int(try g.intAttribute("padding")))
            try load(conv.weight, from: g, "weight", absolute: absolute)
            try load(conv.bias!, from: g, "bias", absolute: absolute)
            return conv
        }
        let conv = try make(absolute: false), magnitude = try make(absolute: true)
        let output = try conv.outputShape(for: Shape(x)), terms = x[0] * output[2] * output[3]
        try checkMultilinear(conv, magnitude: magnitude, g, name,
                             accumulation: (forward: w[1] * kernel * kernel + 1, inputGradient: w[0] * kernel * kernel,
                                            weightGradient: terms + 1),
                             weight: (conv.weight, magnitude.weight), bias: (conv.bias!, magnitude.bias!, terms))
    }

    private func checkLinear(_ g: HDF5Group, _ name: String) throws {
        let w = try g.dataset("weight").shape, n = try g.dataset("x").shape[0]
        func make(absolute: Bool) throws -> Linear {
            let linear = Linear(w[1], w[0])
            try load(linear.weight, from: g, "weight", absolute: absolute)
            try load(linear.bias, from: g, "bias", absolute: absolute)
            return linear
        }
        let linear = try make(absolute: false), magnitude = try make(absolute: true)
        try checkMultilinear(linear, magnitude: magnitude, g, name,
                             accumulation: (forward: w[1] + 1, inputGradient: w[0], weightGradient: n + 1),
                             weight: (linear.weight, magnitude.weight), bias: (linear.bias, magnitude.bias, n))
    }

    /// Average pooling sums its window and divides; max pooling selects (no rounding) and its
    /// gradient sums dy over the windows that overlap, ⌈kernel/stride⌉² of them at most.
    private func checkPool(_ g: HDF5Group, _ name: String, kind: Pool2d.Kind) throws {
        if g.hasAttribute("count_include_pad") {
            XCTAssertEqual(try g.intAttribute("count_include_pad"), 1, "\(name): we implement count_include_pad=True")
        }
        let kernel = Int(try g.intAttribute("kernel")), stride = Int(try g.intAttribute("stride"))
        func make() throws -> Pool2d { Pool2d(kind, kernel: kernel, stride: stride, padding: Int(try g.intAttribute("padding"))) }
        let overlapping = ((kernel + stride - 1) / stride) * ((kernel + stride - 1) / stride)
        let average = kind == .average
        try checkMultilinear(try make(), magnitude: try make(), g, name,
                             accumulation: (forward: average ? kernel * kernel + 1 : 0,
                                            inputGradient: average ? overlapping + 1 : overlapping, weightGradient: 0),
                             selectsByInput: !average)
    }

    private func checkGlobalAveragePool(_ g: HDF5Group, _ name: String) throws {
        let x = try g.dataset("x").shape
        try checkMultilinear(GlobalAvgPool(), magnitude: GlobalAvgPool(), g, name,
                             accumulation: (forward: x[2] * x[3] + 1, inputGradient: 1, weightGradient: 0))
    }

    // MARK: - Batch norm

    /// One channel's values of a [N, C, H, W] or [N, C] dataset.
    private func channel(_ values: [Double], _ c: Int, shape: [Int]) -> [Double] {
        let channels = shape[1], area = shape.count == 4 ? shape[2] * shape[3] : 1
        return (0..<shape[0]).flatMap { (i: Int) -> ArraySlice<Double> in
            let start = (i * channels + c) * area
            return values[start..<start + area]
        }
    }

    /// Scatters per-channel results back into [N, C, ...] order.
    private func unchannel(_ perChannel: [[Double]], shape: [Int]) -> [Double] {
        let channels = shape[1], area = shape.count == 4 ? shape[2] * shape[3] : 1
        var out = [Double](repeating: 0, count: shape.reduce(1, *))
        for c in 0..<channels {
            for (k, v) in perChannel[c].enumerated() { out[((k / area) * channels + c) * area + k % area] = v }
        }
        return out
    }

    /// The allowed error of each batch-norm output, per channel.
    private struct BatchNormBounds {
        var y: [[Double]] = [], dx: [[Double]] = [], dWeight: [Double] = [], dBias: [Double] = []
        var runningMean: [Double] = [], runningVar: [Double] = []
    }

    /// PyTorch's batch norm, y = (x − μ)/√(σ² + ε)·γ + β, its gradients and running
    /// statistics, evaluated with running error bounds.
    private func batchNormBounds(_ g: HDF5Group, training: Bool) throws -> BatchNormBounds {
        let shape = try g.dataset("x").shape, x = try g.doubles("x"), dy = try g.doubles("dy")
        let weight = try g.doubles("weight"), bias = try g.doubles("bias")
        let runningMean = try g.doubles("running_mean"), runningVar = try g.doubles("running_var")
        let eps = Bounded.rounded(try g.doubleAttribute("eps")), momentum = Bounded.rounded(try g.doubleAttribute("momentum"))
        let one = Bounded(exact: 1)
        var bounds = BatchNormBounds()
        for c in 0..<shape[1] {
            let xs = channel(x, c, shape: shape).map(Bounded.init(stored:)), dys = channel(dy, c, shape: shape).map(Bounded.init(stored:))
            let count = Bounded(exact: Double(xs.count)), gamma = Bounded(stored: weight[c]), beta = Bounded(stored: bias[c])
            let mean: Bounded, variance: Bounded
            if training {
                mean = Bounded.sum(xs) / count
                variance = Bounded.sum(xs.map { ($0 - mean) * ($0 - mean) }) / count
            } else {
                (mean, variance) = (Bounded(stored: runningMean[c]), Bounded(stored: runningVar[c]))
            }
            let invStd = one / (variance + eps).squareRoot()
            let normalized = xs.map { ($0 - mean) * invStd }
            bounds.y.append(normalized.map { ($0 * gamma + beta).allowedError })
            guard training else {
                bounds.dx.append(dys.map { (gamma * invStd * $0).allowedError })
                continue
            }
            let sumDy = Bounded.sum(dys), sumDyNormalized = Bounded.sum(zip(dys, normalized).map { $0 * $1 })
            let meanDy = sumDy / count, meanDyNormalized = sumDyNormalized / count
            bounds.dx.append(zip(dys, normalized).map { (gamma * invStd * ($0 - meanDy - $1 * meanDyNormalized)).allowedError })
            bounds.dWeight.append(sumDyNormalized.allowedError)
            bounds.dBias.append(sumDy.allowedError)
            let keep = one - momentum
            bounds.runningMean.append((keep * Bounded(stored: runningMean[c]) + momentum * mean).allowedError)
            let unbiased = variance * count / (count - one)
            bounds.runningVar.append((keep * Bounded(stored: runningVar[c]) + momentum * unbiased).allowedError)
        }
        return bounds
    }

    private func checkBatchNorm(_ g: HDF5Group, _ name: String) throws {
        let shape = try g.dataset("x").shape
        let bn = BatchNorm(shape[1], eps: Real(try g.doubleAttribute("eps")), momentum: Real(try g.doubleAttribute("momentum")))
        try load(bn.weight, from: g, "weight")
        try load(bn.bias, from: g, "bias")
        bn.runningMean.copy(from: try g.tensor("running_mean"))
        bn.runningVar.copy(from: try g.tensor("running_var"))
        let training = try g.intAttribute("training") == 1
        let bounds = try batchNormBounds(g, training: training)
        let x = try g.tensor("x")
        assertWithin(bn.forward(x, mode: training ? .training : .evaluation), try g.doubles("y"),
                     allowed: unchannel(bounds.y, shape: shape), "\(name) y")
        assertWithin(bn.backward(x, try g.tensor("dy")), try g.doubles("dx"), allowed: unchannel(bounds.dx, shape: shape), "\(name) dx")
        if training {
            assertWithin(bn.weight.grad, try g.doubles("dweight"), allowed: bounds.dWeight, "\(name) dweight")
            assertWithin(bn.bias.grad, try g.doubles("dbias"), allowed: bounds.dBias, "\(name) dbias")
            assertWithin(bn.runningMean, try g.doubles("running_mean_after"), allowed: bounds.runningMean, "\(name) running_mean")
            assertWithin(bn.runningVar, try g.doubles("running_var_after"), allowed: bounds.runningVar, "\(name) running_var")
            XCTAssertEqual(bn.numBatchesTracked, 1, "\(name): one training batch tracked")
        } else {
            XCTAssertEqual(bn.runningMean.array, try g.tensor("running_mean").array, "\(name): evaluation keeps running_mean")
        }
    }

    // MARK: - Cross-entropy

    /// loss = mean over rows of logsumexp(z) − Σⱼ tⱼ·zⱼ (t: 1 − ε on the label plus ε/K
    /// everywhere) and dlogits = (softmax(z) − t)/N, evaluated with running error bounds.
    private func checkCrossEntropy(_ g: HDF5Group, _ name: String) throws {
        let logits = try g.tensor("logits"), labels = try g.dataset("labels").readInt64s().map { Int32($0) }
        let smoothing = try g.doubleAttribute("label_smoothing")
        let loss = SoftmaxCrossEntropy(labelSmoothing: Real(smoothing))
        let result = labels.withUnsafeBufferPointer { loss.evaluate(logits: logits, labels: $0) }

        let z = try g.doubles("logits"), n = labels.count, k = logits.shape[1]
        let epsilon = Bounded.rounded(smoothing), rows = Bounded(exact: Double(n)), classes = Bounded(exact: Double(k))
        var rowLosses: [Bounded] = [], gradientBounds: [Double] = []
        for i in 0..<n {
            let row = z[i * k..<(i + 1) * k].map(Bounded.init(stored:))
            let top = row.max { $0.value < $1.value }!
            let logZ = top + Bounded.sum(row.map { ($0 - top).exp() }).log()
            let targets = (0..<k).map { j in
                (j == Int(labels[i]) ? Bounded(exact: 1) - epsilon : Bounded(exact: 0)) + epsilon / classes
            }
            gradientBounds += zip(row, targets).map { ((($0 - logZ).exp() - $1) / rows).allowedError }
            rowLosses.append(logZ - Bounded.sum(zip(row, targets).map { $0 * $1 }))
        }
        let expected = Bounded.sum(rowLosses) / rows
        XCTAssertEqual(result.lossSum / Double(n), try g.doubles("loss")[0], accuracy: expected.allowedError, "\(name) loss")
        assertWithin(result.gradient, try g.doubles("dlogits"), allowed: gradientBounds, "\(name) dlogits")
    }

    // MARK: - Optimizers

    /// Runs the optimizer over the file's gradient rows; each parameter within the running
    /// error bound of PyTorch's update formulas (torch.optim.SGD, Adam, AdamW).
    private func checkOptimizer(_ g: HDF5Group, _ name: String, op: String) throws {
        let start = try g.tensor("param")
        let grads: [Real] = try g.dataset("grads").readReals()
        let n = start.count
        let values = Storage(count: n), gradients = Storage(count: n)
        values.base.update(from: start.data, count: n)
        func attribute(_ key: String, _ fallback: Double) throws -> Double {
            g.hasAttribute(key) ? try g.doubleAttribute(key) : fallback
        }
        let lr = try attribute("lr", 0), wd = try attribute("weight_decay", 0), momentum = try attribute("momentum", 0)
        let nesterov = try attribute("nesterov", 0) == 1, eps = try attribute("eps", 1e-8)
        let betas = op == "sgd" ? [0, 0] : try g.doubleAttributes("betas")
        let optimizer: any Optimizer
        if op == "sgd" {
            optimizer = SGD(values: values, gradients: gradients, learningRate: Real(lr), momentum: Real(momentum),
                            weightDecay: Real(wd), nesterov: nesterov)
        } else {
            optimizer = Adam(values: values, gradients: gradients, learningRate: Real(lr), beta1: Real(betas[0]),
                             beta2: Real(betas[1]), eps: Real(eps), weightDecay: Real(wd), decoupled: op == "adamw")
        }
        let steps = Int(try g.intAttribute("steps"))
        for s in 0..<steps {
            grads.withUnsafeBufferPointer { gradients.base.update(from: $0.baseAddress! + s * n, count: n) }
            optimizer.step()
        }
        XCTAssertEqual(optimizer.stepCount, steps)

        let (rate, decay, mu) = (Bounded.rounded(lr), Bounded.rounded(wd), Bounded.rounded(momentum))
        let (beta1, beta2, epsilon) = (Bounded.rounded(betas[0]), Bounded.rounded(betas[1]), Bounded.rounded(eps))
        let one = Bounded(exact: 1)
        let bounds = (0..<n).map { i -> Double in
            var p = Bounded(stored: Double(start.data[i]))
            var buffer = Bounded(exact: 0), firstMoment = Bounded(exact: 0), secondMoment = Bounded(exact: 0)
            for s in 0..<steps {
                var d = Bounded(stored: Double(grads[s * n + i]))
                if op == "sgd" {
                    d = d + decay * p
                    buffer = s == 0 ? d : mu * buffer + d
                    if momentum != 0 { d = nesterov ? d + mu * buffer : buffer }
                    p = p - rate * d
                    continue
                }
                if op == "adamw" { p = p * (one - rate * decay) } else { d = d + decay * p }
                firstMoment = beta1 * firstMoment + (one - beta1) * d
                secondMoment = beta2 * secondMoment + (one - beta2) * d * d
                let correction1 = one - beta1.power(s + 1), correction2 = one - beta2.power(s + 1)
                p = p - rate / correction1 * firstMoment / ((secondMoment / correction2).squareRoot() + epsilon)
            }
            return p.allowedError
        }
        assertWithin(Tensor(shape: Shape(n), storage: values), try g.doubles("param_after"), allowed: bounds, "\(name) param")
    }
}
