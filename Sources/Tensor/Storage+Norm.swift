/// The Euclidean norm of a buffer, for gradient clipping and for finding a diverged state.
extension Storage {
    /// The Euclidean norm of the values, summed in float64: NaN when any value is NaN, +∞
    /// when any is ±∞ (and finite otherwise), so one pass both measures and checks them.
    public func euclideanNorm() -> Double {
        let x = base
        // Four independent sums, so the loop is not one long chain of dependent additions.
        var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
        var i = 0
        while i + 4 <= count {
            let a = Double(x[i]), b = Double(x[i + 1]), c = Double(x[i + 2]), d = Double(x[i + 3])
            s0 += a * a
            s1 += b * b
            s2 += c * c
            s3 += d * d
            i += 4
        }
        while i < count {
            let a = Double(x[i])
            s0 += a * a
            i += 1
        }
        let squares = (s0 + s1) + (s2 + s3)
        guard squares == .infinity else { return squares.squareRoot() }
        // Either a value is ±∞, or (float64 builds only) finite values beyond 1e154 overflowed
        // their squares: measuring relative to the largest magnitude tells which.
        var largest = 0.0
        for j in 0..<count { largest = Swift.max(largest, abs(Double(x[j]))) }
        guard largest.isFinite else { return .infinity }
        var scaled = 0.0
        for j in 0..<count {
            let r = Double(x[j]) / largest
            scaled += r * r
        }
        return largest * scaled.squareRoot()
    }
}
