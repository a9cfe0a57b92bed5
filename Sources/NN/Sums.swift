import CKernels

/// Float64 sums over `Real` data. In the float32 build they run in C on eight vector lanes
/// (`Sources/CKernels/sums.c`); the float64 build sums in order. The order of the additions
/// depends only on the count, so the results do not depend on the thread count.
enum Sums {
    /// Σ x[0..<count]
    static func sum(_ x: UnsafePointer<Real>, _ count: Int) -> Double {
        #if CNN_FLOAT64
        var s: Double = 0
        for i in 0..<count { s += x[i] }
        return s
        #else
        return cnn_sum_f32(x, count)
        #endif
    }

    /// Σ a·b over [0, count), the products in float64.
    static func dot(_ a: UnsafePointer<Real>, _ b: UnsafePointer<Real>, _ count: Int) -> Double {
        #if CNN_FLOAT64
        var s: Double = 0
        for i in 0..<count { s += a[i] * b[i] }
        return s
        #else
        return cnn_dot_f32(a, b, count)
        #endif
    }

    /// Per lane of channel-blocked data (`rows` rows of `block` lanes): Σ a·b, or Σ a where
    /// `b` is nil, handed to `body(lane, sum)`. Channel blocks exist in the float32 build only.
    static func forEachLane(_ a: UnsafePointer<Real>, _ b: UnsafePointer<Real>?, rows: Int, block: Int,
                            _ body: (_ lane: Int, _ sum: Double) -> Void) {
        #if CNN_FLOAT64
        preconditionFailure("channel-blocked activations are float32 only")
        #else
        withUnsafeTemporaryAllocation(of: Double.self, capacity: block) { sums in
            cnn_blocked_sums_f32(a, b, rows, block, sums.baseAddress!)
            for lane in 0..<block { body(lane, sums[lane]) }
        }
        #endif
    }

    /// Adds Σx to `sum` and Σx² to `squares`.
    static func addSumAndSquares(_ x: UnsafePointer<Real>, _ count: Int, sum: inout Double, squares: inout Double) {
        #if CNN_FLOAT64
        for i in 0..<count {
            sum += x[i]
            squares += x[i] * x[i]
        }
        #else
        cnn_sum_and_squares_f32(x, count, &sum, &squares)
        #endif
    }

    /// Adds Σd to `sum` and Σd·x̂ to `weighted`, with d = dy (with a fused ReLU, dy where
    /// y > 0 and 0 elsewhere; `y` is nil without one) and x̂ = (x − mean)·invStd in `Real`.
    static func addNormalizedGradientSums(dy: UnsafePointer<Real>, y: UnsafePointer<Real>?, x: UnsafePointer<Real>,
                                          mean: Real, invStd: Real, _ count: Int, sum: inout Double, weighted: inout Double) {
        #if CNN_FLOAT64
        for i in 0..<count {
            let d = y.map { $0[i] > 0 ? dy[i] : 0 } ?? dy[i]
            sum += d
            weighted += d * ((x[i] - mean) * invStd)
        }
        #else
        cnn_normalized_gradient_sums_f32(dy, y, x, mean, invStd, count, &sum, &weighted)
        #endif
    }
}
