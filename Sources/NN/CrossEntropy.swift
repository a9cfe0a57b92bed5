import Foundation

/// Softmax cross-entropy over logits [N, K] with integer labels, averaged over the batch,
/// with optional label smoothing (PyTorch's: the target puts 1−ε on the label and ε/K on
/// every class). Computed through log-softmax, so large logits cannot overflow.
public final class SoftmaxCrossEntropy {
    public var labelSmoothing: Real
    private var gradient: Tensor?

    public struct Result {
        /// Σ over the batch of each example's loss (the mean is `lossSum / N`).
        public var lossSum: Double
        /// Examples whose largest logit is the label.
        public var correct: Int
        /// d(loss)/d(logits), where loss = `lossSum / normalizer`.
        public var gradient: Tensor
    }

    public init(labelSmoothing: Real = 0) { self.labelSmoothing = labelSmoothing }

    /// `normalizer` is what the summed loss is divided by: the batch size by default, the
    /// global batch when replicas share one step.
    public func evaluate(logits: Tensor, labels: UnsafeBufferPointer<Int32>, normalizer: Int? = nil) -> Result {
        let n = logits.shape[0], k = logits.shape[1]
        precondition(labels.count == n, "\(labels.count) labels for \(n) logits rows")
        let g = Tensor.reuse(&gradient, shape: logits.shape)
        let scale = 1 / Double(normalizer ?? n)
        let eps = Double(labelSmoothing)
        var lossSum: Double = 0, correct = 0
        for i in 0..<n {
            let row = logits.data + i * k, grad = g.data + i * k
            let label = Int(labels[i])
            precondition(label >= 0 && label < k, "label \(label) outside 0..<\(k)")
            var best = 0
            var top = row[0]
            for j in 1..<k where row[j] > top {
                top = row[j]
                best = j
            }
            if best == label { correct += 1 }
            var sumExp: Double = 0
            for j in 0..<k { sumExp += exp(Double(row[j] - top)) }
            let logZ = Double(top) + log(sumExp)
            // loss = −(1−ε)·log p_label − ε/K · Σ_j log p_j
            var sumLogP: Double = 0
            for j in 0..<k {
                let logP = Double(row[j]) - logZ
                sumLogP += logP
                let target = (j == label ? 1 - eps : 0) + eps / Double(k)
                grad[j] = Real((exp(logP) - target) * scale)
            }
            lossSum += -(1 - eps) * (Double(row[label]) - logZ) - eps / Double(k) * sumLogP
        }
        return Result(lossSum: lossSum, correct: correct, gradient: g)
    }
}
