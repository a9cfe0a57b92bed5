import NN
import XCTest

/// Two computations of the same convolution that sum the same K products in different orders
/// (another grouping of images, another engine). Each is within γ_K·M of the exact value
/// (Higham Thm. 3.1, M = Σ|aᵢbᵢ|, which is the same convolution run on |x|, |W|, |b|, |dy|), so
/// they may differ by 2·γ_K·M, element by element, on any BLAS kernel and thread count.
func assertEqualWithinRounding(_ a: [Real], _ b: [Real], magnitude: [Real], terms k: Int, _ what: String,
                               file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, what, file: file, line: line)
    let u = Double(Real.ulpOfOne) / 2, gamma = Double(k) * u / (1 - Double(k) * u)
    // The magnitudes were computed in floating point from non-negative terms: within (1 + γ).
    var worst = 0.0
    for i in 0..<min(a.count, b.count, magnitude.count) where a[i] != b[i] {
        let allowed: Double = 2 * gamma * Double(magnitude[i]) * (1 + gamma)
        worst = max(worst, abs(Double(a[i]) - Double(b[i])) / allowed)
    }
    XCTAssertLessThanOrEqual(worst, 1, "\(what): difference against its rounding bound", file: file, line: line)
}
