import NN

/// Compares a layer's backward with central finite differences of the scalar
/// L = Σ r ⊙ forward(x) for a fixed random r, over every input element and every
/// parameter element (the shapes are kept small so that this stays cheap).
struct GradientChecker {
    /// Float32 needs a step large enough to rise above rounding; float64 can go close to the limit.
    static let step: Real = MemoryLayout<Real>.size == 8 ? 1e-6 : 1e-2
    static let tolerance = MemoryLayout<Real>.size == 8 ? 1e-6 : 1e-2

    struct Report {
        var worstInput = 0.0, worstParameter = 0.0
        var worst: Double { max(worstInput, worstParameter) }
        var where_ = ""
    }

    /// `reset` runs before every forward, to replay randomness (dropout masks).
    static func check(_ layer: any Layer, input: Tensor, mode: Mode = .training, seed: UInt64 = 7,
                      reset: () -> Void = {}) -> Report {
        var rng = SeededGenerator(seed: seed)
        reset()
        let y = layer.forward(input, mode: mode)
        let r = Tensor(shape: y.shape, values: (0..<y.count).map { _ in rng.uniform(-1, 1) })
        for p in layer.allParameters { p.grad.fill(0) }
        let analyticInput = Tensor(zeros: input.shape)
        analyticInput.copy(from: layer.backward(input, r))
        let analyticParameters = layer.allParameters.map { p -> Tensor in
            let t = Tensor(zeros: p.shape)
            t.copy(from: p.grad)
            return t
        }

        func loss() -> Double {
            reset()
            let out = layer.forward(input, mode: mode)
            var s = 0.0
            for i in 0..<out.count { s += Double(out.data[i]) * Double(r.data[i]) }
            return s
        }
        func numeric(_ at: UnsafeMutablePointer<Real>) -> Double {
            let saved = at.pointee
            at.pointee = saved + step
            let plus = loss()
            at.pointee = saved - step
            let minus = loss()
            at.pointee = saved
            return (plus - minus) / (2 * Double(step))
        }
        func error(_ a: Double, _ n: Double) -> Double { abs(a - n) / max(abs(a), abs(n), 1e-2) }

        var report = Report()
        for i in 0..<input.count {
            let e = error(Double(analyticInput.data[i]), numeric(input.data + i))
            if e > report.worstInput { report.worstInput = e; report.where_ = "input[\(i)]" }
        }
        for (p, analytic) in zip(layer.allParameters, analyticParameters) {
            for i in 0..<p.value.count {
                let e = error(Double(analytic.data[i]), numeric(p.value.data + i))
                if e > report.worstParameter { report.worstParameter = e; report.where_ = "\(p.name)[\(i)]" }
            }
        }
        _ = loss()  // leave the layer's caches as they were for the unperturbed input
        return report
    }
}

extension Layer {
    /// This layer's parameters and those of all its descendants.
    var allParameters: [Parameter] { parameters + children.flatMap { $0.layer.allParameters } }
}

/// Random inputs for the checks.
enum Inputs {
    static func uniform(_ shape: Shape, seed: UInt64, range: ClosedRange<Real> = -1...1) -> Tensor {
        var rng = SeededGenerator(seed: seed)
        return Tensor(shape: shape, values: (0..<shape.count).map { _ in rng.uniform(range.lowerBound, range.upperBound) })
    }

    /// Values at least 0.05 apart from each other and from zero, so that neither a max
    /// nor a ReLU kink lies within a finite-difference step of any element.
    static func separated(_ shape: Shape, seed: UInt64) -> Tensor {
        var rng = SeededGenerator(seed: seed)
        var values = (0..<shape.count).map { Real($0 - shape.count / 2) * 0.05 + 0.025 }
        values.shuffle(using: &rng)
        return Tensor(shape: shape, values: values)
    }
}
