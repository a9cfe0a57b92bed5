/// The arithmetic of oneDNN's Winograd convolution (`ConvolutionAlgorithm.winograd`,
/// "jit_wino_4x3"), written out to bound its rounding.
///
/// F(4×4, 3×3) on the interpolation points 0, ±5/8, ±3/2 and ∞ (oneDNN 2.x, as its
/// benchdnn reference spells them): a 4×4 tile of outputs from a 6×6 tile of input and a
/// 3×3 kernel, y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A, the product summed over input channels in the
/// transformed domain. The weight gradient runs F(3×3, 4×4): the 4×4 tile of dy takes the
/// kernel's place (`weightGradientFilterTransform`) and 3×3 weights come out
/// (`weightGradientOutputTransform`), summed over images and tiles.
///
/// Rounding (Higham, "Accuracy and Stability of Numerical Algorithms", §3.5: a product of
/// matrices computed in floating point is within γ_k of the exact one relative to the
/// product of their absolute values, k the roundings each term goes through): every output
/// is within γ_k·M of the exact one, M the same computation on absolute values with the
/// absolute matrices, k the roundings on a term's way:
/// - input transform: 2 per dimension (two chained FMAs), 4;
/// - filter transform: 4 per dimension (three operations, and G's entries, such as
///   256/225, are rounded to float32), 8;
/// - the elementwise product, 1; the sum over C channels (or images × tiles), C;
/// - output transform: 4 per dimension, 8; the bias, 1.
/// So k = C + 22 (`transformRoundings`). Compared with direct's γ_{9C}·Σ|w·x|, M can be up
/// to `uniformAmplification` (62.7) times Σ|w·x| where the tile's values are of one size:
/// about 7–10× direct's bound at C = 64…512.
public enum WinogradF4x3 {
    /// Bᵀ (6×6): the input tile's transform, rows by transformed index.
    public static let inputTransform: [[Double]] = [
        [225.0 / 256, 0, -169.0 / 64, 0, 1, 0],
        [0, -45.0 / 32, -9.0 / 4, 5.0 / 8, 1, 0],
        [0, 45.0 / 32, -9.0 / 4, -5.0 / 8, 1, 0],
        [0, -75.0 / 128, -25.0 / 64, 3.0 / 2, 1, 0],
        [0, 75.0 / 128, -25.0 / 64, -3.0 / 2, 1, 0],
        [0, 225.0 / 256, 0, -169.0 / 64, 0, 1],
    ]

    /// G (6×3): the 3×3 kernel's transform.
    public static let filterTransform: [[Double]] = [
        [256.0 / 225, 0, 0],
        [-2048.0 / 2975, -256.0 / 595, -32.0 / 119],
        [-2048.0 / 2975, 256.0 / 595, -32.0 / 119],
        [128.0 / 1071, 64.0 / 357, 32.0 / 119],
        [128.0 / 1071, -64.0 / 357, 32.0 / 119],
        [0, 0, 1],
    ]

    /// Aᵀ (4×6): back from the transformed domain to the 4×4 output tile.
    public static let outputTransform: [[Double]] = [
        [1, 1, 1, 1, 1, 0],
        [0, 5.0 / 8, -5.0 / 8, 3.0 / 2, -3.0 / 2, 0],
        [0, 25.0 / 64, 25.0 / 64, 9.0 / 4, 9.0 / 4, 0],
        [0, 125.0 / 512, -125.0 / 512, 27.0 / 8, -27.0 / 8, 1],
    ]

    /// G′ (6×4): the weight gradient's transform of a 4×4 tile of dy.
    public static let weightGradientFilterTransform: [[Double]] = [
        [256.0 / 225, 0, 0, 0],
        [-2048.0 / 2975, -256.0 / 595, -32.0 / 119, -20.0 / 119],
        [-2048.0 / 2975, 256.0 / 595, -32.0 / 119, 20.0 / 119],
        [128.0 / 1071, 64.0 / 357, 32.0 / 119, 48.0 / 119],
        [128.0 / 1071, -64.0 / 357, 32.0 / 119, -48.0 / 119],
        [0, 0, 0, 1],
    ]

    /// A′ᵀ (3×6): the weight gradient's output transform, to 3×3 weights.
    public static let weightGradientOutputTransform: [[Double]] = [
        [1, 1, 1, 1, 1, 0],
        [0, 5.0 / 8, -5.0 / 8, 3.0 / 2, -3.0 / 2, 0],
        [0, 25.0 / 64, 25.0 / 64, 9.0 / 4, 9.0 / 4, 1],
    ]

    /// Side of the output tile (forward and input gradient) and of the transformed tile.
    public static let tile = 4, transformedTile = 6

    /// k − C: the roundings a term goes through besides the sum over channels (see above).
    public static let transformRoundings = 22

    /// max over a tile's 16 outputs of M / Σ|w·x| when every |w| and |x| is 1: how much
    /// larger than direct's magnitude Winograd's is where a tile's values are of one size.
    public static let uniformAmplification: Double = {
        let b = inputTransform.map { $0.map(abs) }, g = filterTransform.map { $0.map(abs) }
        let a = outputTransform.map { $0.map(abs) }
        // (|G|·1·|G|ᵀ) ⊙ (|Bᵀ|·1·|B|) is a product of row sums, and so is the output's.
        let gSums = g.map { $0.reduce(0, +) }, bSums = b.map { $0.reduce(0, +) }
        var largest = 0.0
        for i in 0..<tile {
            for j in 0..<tile {
                var m = 0.0
                for p in 0..<transformedTile {
                    for q in 0..<transformedTile { m += a[i][p] * a[j][q] * gSums[p] * gSums[q] * bSums[p] * bSums[q] }
                }
                largest = max(largest, m / 9)
            }
        }
        return largest
    }()
}
