import HDF5
import NN
import Optim
import XCTest

/// Every case of layers.h5 against our layers, within 1e-4 relative. (The float64 build
/// agrees to ~5e-8 and no closer: the layer file's expected values carry float32 rounding.)
final class LayerGoldenTests: XCTestCase {
    static let tolerance = 1e-4

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
            case "global_avgpool": try checkLayer(GlobalAvgPool(), group, name)
            case "relu": try checkLayer(Activation(.relu), group, name)
            case "sigmoid": try checkLayer(Activation(.sigmoid), group, name)
            case "tanh": try checkLayer(Activation(.tanh), group, name)
            case "gelu": try checkLayer(Activation(.gelu), group, name)
            case "batchnorm": try checkBatchNorm(group, name)
            case "cross_entropy": try checkCrossEntropy(group, name)
            case "sgd", "adam", "adamw": try checkOptimizer(group, name, op: op)
            default: XCTFail("\(name): no test for op '\(op)'")
            }
        }
    }

    // MARK: - Cases

    /// Forward y and backward dx for a layer without parameters.
    @discardableResult
    private func checkLayer(_ layer: any Layer, _ g: HDF5Group, _ name: String, mode: Mode = .training) throws -> any Layer {
        let x = try g.tensor("x")
        let y = layer.forward(x, mode: mode)
        assertClose(y, try g.doubles("y"), within: Self.tolerance, "\(name) y")
        let dx = layer.backward(x, try g.tensor("dy"))
        assertClose(dx, try g.doubles("dx"), within: Self.tolerance, "\(name) dx")
        return layer
    }

    private func load(_ p: Parameter, _ g: HDF5Group, _ key: String) throws {
        p.value.copy(from: try g.tensor(key))
    }

    private func checkParameterGradients(_ weight: Parameter, _ bias: Parameter, _ g: HDF5Group, _ name: String) throws {
        assertClose(weight.grad, try g.doubles("dweight"), within: Self.tolerance, "\(name) dweight")
        assertClose(bias.grad, try g.doubles("dbias"), within: Self.tolerance, "\(name) dbias")
    }

    private func checkConv(_ g: HDF5Group, _ name: String) throws {
        let w = try g.dataset("weight").shape
        let conv = Conv2d(w[1], w[0], kernel: Int(try g.intAttribute("kernel")),
                          stride: Int(try g.intAttribute("stride")), padding: Int(try g.intAttribute("padding")))
        try load(conv.weight, g, "weight")
        try load(conv.bias!, g, "bias")
        try checkLayer(conv, g, name)
        try checkParameterGradients(conv.weight, conv.bias!, g, name)
    }

    private func checkLinear(_ g: HDF5Group, _ name: String) throws {
        let w = try g.dataset("weight").shape
        let linear = Linear(w[1], w[0])
        try load(linear.weight, g, "weight")
        try load(linear.bias, g, "bias")
        try checkLayer(linear, g, name)
        try checkParameterGradients(linear.weight, linear.bias, g, name)
    }

    private func checkPool(_ g: HDF5Group, _ name: String, kind: Pool2d.Kind) throws {
        if g.hasAttribute("count_include_pad") {
            XCTAssertEqual(try g.intAttribute("count_include_pad"), 1, "\(name): we implement count_include_pad=True")
        }
        try checkLayer(Pool2d(kind, kernel: Int(try g.intAttribute("kernel")), stride: Int(try g.intAttribute("stride")),
                              padding: Int(try g.intAttribute("padding"))), g, name)
    }

    private func checkBatchNorm(_ g: HDF5Group, _ name: String) throws {
        let channels = try g.dataset("weight").count
        let bn = BatchNorm(channels, eps: Real(try g.doubleAttribute("eps")), momentum: Real(try g.doubleAttribute("momentum")))
        try load(bn.weight, g, "weight")
        try load(bn.bias, g, "bias")
        bn.runningMean.copy(from: try g.tensor("running_mean"))
        bn.runningVar.copy(from: try g.tensor("running_var"))
        let training = try g.intAttribute("training") == 1
        try checkLayer(bn, g, name, mode: training ? .training : .evaluation)
        if training {
            try checkParameterGradients(bn.weight, bn.bias, g, name)
            assertClose(bn.runningMean, try g.doubles("running_mean_after"), within: Self.tolerance, "\(name) running_mean")
            assertClose(bn.runningVar, try g.doubles("running_var_after"), within: Self.tolerance, "\(name) running_var")
            XCTAssertEqual(bn.numBatchesTracked, 1, "\(name): one training batch tracked")
        } else {
            XCTAssertEqual(bn.runningMean.array, try g.tensor("running_mean").array, "\(name): evaluation keeps running_mean")
        }
    }

    private func checkCrossEntropy(_ g: HDF5Group, _ name: String) throws {
        let logits = try g.tensor("logits")
        let labels = try g.dataset("labels").readInt64s().map { Int32($0) }
        let loss = SoftmaxCrossEntropy(labelSmoothing: Real(try g.doubleAttribute("label_smoothing")))
        let result = labels.withUnsafeBufferPointer { loss.evaluate(logits: logits, labels: $0) }
        let expected = try g.doubles("loss")[0]
        let mean = result.lossSum / Double(labels.count)
        XCTAssertEqual(mean, expected, accuracy: Self.tolerance * abs(expected), "\(name) loss")
        assertClose(result.gradient, try g.doubles("dlogits"), within: Self.tolerance, "\(name) dlogits")
    }

    private func checkOptimizer(_ g: HDF5Group, _ name: String, op: String) throws {
        let start = try g.tensor("param")
        let grads: [Real] = try g.dataset("grads").readReals()
        let n = start.count
        let values = Storage(count: n), gradients = Storage(count: n)
        values.base.update(from: start.data, count: n)
        func attribute(_ key: String, _ fallback: Double) throws -> Real {
            Real(g.hasAttribute(key) ? try g.doubleAttribute(key) : fallback)
        }
        let lr = try attribute("lr", 0), wd = try attribute("weight_decay", 0)
        let optimizer: any Optimizer
        if op == "sgd" {
            optimizer = SGD(values: values, gradients: gradients, learningRate: lr, momentum: try attribute("momentum", 0),
                            weightDecay: wd, nesterov: try attribute("nesterov", 0) == 1)
        } else {
            let betas = try g.doubleAttributes("betas")
            optimizer = Adam(values: values, gradients: gradients, learningRate: lr, beta1: Real(betas[0]),
                             beta2: Real(betas[1]), eps: try attribute("eps", 1e-8), weightDecay: wd,
                             decoupled: op == "adamw")
        }
        let steps = Int(try g.intAttribute("steps"))
        for s in 0..<steps {
            grads.withUnsafeBufferPointer { gradients.base.update(from: $0.baseAddress! + s * n, count: n) }
            optimizer.step()
        }
        XCTAssertEqual(optimizer.stepCount, steps)
        assertClose(Tensor(shape: Shape(n), storage: values), try g.doubles("param_after"), within: Self.tolerance, "\(name) param")
    }
}
