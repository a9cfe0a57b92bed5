import Foundation
import NN

/// Updates parameters in place from their gradients, both held in flat buffers of equal
/// length (a `Network`'s `parameterStorage` and `gradientStorage`).
public protocol Optimizer: AnyObject {
    var learningRate: Real { get set }
    /// Optimizer steps taken so far.
    var stepCount: Int { get }
    /// Per-parameter state by PyTorch's slot name ("momentum_buffer", "exp_avg", "exp_avg_sq"),
    /// each as long as the parameter buffer; empty until the first step creates it.
    var slots: [(name: String, storage: Storage)] { get }
    /// The slot names a step creates, in `slots` order.
    var slotNames: [String] { get }
    func step()
    /// Continues from saved state: slot values by name (each as long as the parameters)
    /// and the steps taken.
    func restore(slots: [String: [Real]], stepCount: Int)
}

extension Optimizer {
    /// Copies `values` into a new storage, or nil when the slot was not saved.
    static func storage(_ values: [Real]?) -> Storage? {
        guard let values else { return nil }
        let s = Storage(count: values.count)
        values.withUnsafeBufferPointer { s.base.update(from: $0.baseAddress!, count: values.count) }
        return s
    }
}

// MARK: - SGD

/// Stochastic gradient descent with PyTorch's update rule:
/// g ← g + λ·p; b ← g on the first step, then b ← μ·b + g; g ← g + μ·b (Nesterov) or b; p ← p − η·g.
public final class SGD: Optimizer {
    public var learningRate: Real
    public let momentum: Real, weightDecay: Real, nesterov: Bool
    public private(set) var stepCount = 0
    private let values: Storage, gradients: Storage
    private var momentumBuffer: Storage?

    public init(values: Storage, gradients: Storage, learningRate: Real, momentum: Real = 0,
                weightDecay: Real = 0, nesterov: Bool = false) {
        precondition(values.count == gradients.count, "parameter and gradient buffers differ in length")
        precondition(!nesterov || momentum > 0, "Nesterov momentum needs momentum > 0")
        self.values = values
        self.gradients = gradients
        self.learningRate = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.nesterov = nesterov
    }

    public var slots: [(name: String, storage: Storage)] { momentumBuffer.map { [("momentum_buffer", $0)] } ?? [] }
    public var slotNames: [String] { momentum == 0 ? [] : ["momentum_buffer"] }

    public func restore(slots: [String: [Real]], stepCount: Int) {
        momentumBuffer = Self.storage(slots["momentum_buffer"])
        self.stepCount = stepCount
    }

    public func step() {
        // PyTorch starts the momentum buffer at the first step's direction.
        let first = momentumBuffer == nil
        if momentum != 0 && first { momentumBuffer = Storage(count: values.count) }
        let update = Update(p: values.base, g: gradients.base, buffer: momentumBuffer?.base, learningRate: learningRate,
                            weightDecay: weightDecay, momentum: momentum, nesterov: nesterov, first: first)
        Parallel.forEach(values.count, grain: Parallel.grain(work: 1), update) { Parallel.arguments($0, as: Update.self)($1..<$2) }
        stepCount += 1
    }
}

extension SGD {
    /// The update of a range of parameters; every element on its own, so any split over
    /// threads gives the same bits.
    private struct Update {
        let p: UnsafeMutablePointer<Real>, g: UnsafeMutablePointer<Real>, buffer: UnsafeMutablePointer<Real>?
        let learningRate: Real, weightDecay: Real, momentum: Real, nesterov: Bool, first: Bool

        func callAsFunction(_ range: Range<Int>) {
            let lr = learningRate, wd = weightDecay, mu = momentum
            guard let b = buffer, mu != 0 else {
                for i in range { p[i] -= lr * (g[i] + wd * p[i]) }
                return
            }
            for i in range {
                var d = g[i] + wd * p[i]
                b[i] = first ? d : mu * b[i] + d
                d = nesterov ? d + mu * b[i] : b[i]
                p[i] -= lr * d
            }
        }
    }
}

// MARK: - Adam and AdamW

/// Adam (Kingma & Ba, 2015) with PyTorch's update, and AdamW (Loshchilov & Hutter, 2019)
/// whose weight decay shrinks the parameters directly instead of joining the gradient.
public final class Adam: Optimizer {
    public var learningRate: Real
    public let beta1: Real, beta2: Real, eps: Real, weightDecay: Real
    /// AdamW's decoupled weight decay when true; Adam's L2 penalty when false.
    public let decoupled: Bool
    public private(set) var stepCount = 0
    private let values: Storage, gradients: Storage
    private let expAvg: Storage, expAvgSq: Storage

    public init(values: Storage, gradients: Storage, learningRate: Real, beta1: Real = 0.9, beta2: Real = 0.999,
                eps: Real = 1e-8, weightDecay: Real = 0, decoupled: Bool = false) {
        precondition(values.count == gradients.count, "parameter and gradient buffers differ in length")
        self.values = values
        self.gradients = gradients
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
        self.decoupled = decoupled
        expAvg = Storage(count: values.count)
        expAvgSq = Storage(count: values.count)
    }

    public var slots: [(name: String, storage: Storage)] {
        stepCount == 0 ? [] : [("exp_avg", expAvg), ("exp_avg_sq", expAvgSq)]
    }
    public var slotNames: [String] { ["exp_avg", "exp_avg_sq"] }

    public func restore(slots: [String: [Real]], stepCount: Int) {
        for (name, storage) in [("exp_avg", expAvg), ("exp_avg_sq", expAvgSq)] {
            if let values = slots[name] {
                values.withUnsafeBufferPointer { storage.base.update(from: $0.baseAddress!, count: storage.count) }
            } else {
                storage.base.update(repeating: 0, count: storage.count)
            }
        }
        self.stepCount = stepCount
    }

    public func step() {
        stepCount += 1
        let t = Real(stepCount)
        let correction1 = 1 - pow(beta1, t), correction2Root = (1 - pow(beta2, t)).squareRoot()
        let stepSize = learningRate / correction1
        let update = Update(p: values.base, g: gradients.base, m: expAvg.base, v: expAvgSq.base, learningRate: learningRate,
                            weightDecay: weightDecay, beta1: beta1, beta2: beta2, eps: eps, decoupled: decoupled,
                            stepSize: stepSize, correction2Root: correction2Root)
        Parallel.forEach(values.count, grain: Parallel.grain(work: 4), update) { Parallel.arguments($0, as: Update.self)($1..<$2) }
    }

    /// The update of a range of parameters, element by element.
    private struct Update {
        let p: UnsafeMutablePointer<Real>, g: UnsafeMutablePointer<Real>, m: UnsafeMutablePointer<Real>, v: UnsafeMutablePointer<Real>
        let learningRate: Real, weightDecay: Real, beta1: Real, beta2: Real, eps: Real, decoupled: Bool
        let stepSize: Real, correction2Root: Real

        func callAsFunction(_ range: Range<Int>) {
            let lr = learningRate, wd = weightDecay, b1 = beta1, b2 = beta2
            for i in range {
                var grad = g[i]
                if decoupled { p[i] *= 1 - lr * wd } else { grad += wd * p[i] }
                m[i] += (grad - m[i]) * (1 - b1)
                v[i] = b2 * v[i] + (1 - b2) * grad * grad
                p[i] -= stepSize * m[i] / (v[i].squareRoot() / correction2Root + eps)
            }
        }
    }
}
