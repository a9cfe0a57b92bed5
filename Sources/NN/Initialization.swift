/// How convolution and linear weights start. Batch norm always starts at scale 1, shift 0.
public enum Initialization: String, CaseIterable, Sendable {
    /// PyTorch's default: weights and biases uniform in ±1/√fan_in.
    case pytorch
    /// Xavier-uniform weights, ±√(6 / (fan_in + fan_out)) (D2L's `init_cnn`); biases as PyTorch.
    case xavier
}

extension Network {
    /// Fills every parameter from a generator seeded with `seed`, in forward order, so the
    /// same seed gives the same weights on every machine.
    public func initialize(_ scheme: Initialization, seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        for (_, p) in parameters {
            let v = p.value
            switch p.role {
            case let .weight(fanIn, fanOut):
                let bound: Real = scheme == .xavier
                    ? (6 / Real(fanIn + fanOut)).squareRoot() : 1 / Real(fanIn).squareRoot()
                for i in 0..<v.count { v.data[i] = rng.uniform(-bound, bound) }
            case let .bias(fanIn):
                let bound = 1 / Real(fanIn).squareRoot()
                for i in 0..<v.count { v.data[i] = rng.uniform(-bound, bound) }
            case .scale: v.fill(1)
            case .shift: v.fill(0)
            }
        }
        for (_, buffer) in buffers {
            switch buffer.value {
            case let .statistic(t, initial): t.fill(initial)
            case let .counter(_, set): set(0)
            case .generator: break  // seeded by `seedDropout`
            }
        }
    }
}
