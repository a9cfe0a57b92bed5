import Foundation
import NN

/// Clipping a flat gradient buffer by its global norm as PyTorch's
/// `torch.nn.utils.clip_grad_norm_` does: every gradient is scaled by max / (norm + 10⁻⁶)
/// when that is below 1, so the direction of the step is kept and its length bounded.
public enum GradientClipping {
    /// What PyTorch adds to the norm before dividing, so that a zero norm cannot divide by zero.
    public static let epsilon = 1e-6

    /// Scales `storage` by `maxNorm / (norm + epsilon)` when that factor is below 1 (PyTorch
    /// clamps it to 1), given `norm`, its `euclideanNorm()`; returns the factor applied.
    @discardableResult
    public static func clip(_ storage: Storage, norm: Double, to maxNorm: Double) -> Double {
        let factor = maxNorm / (norm + epsilon)
        guard factor < 1 else { return 1 }
        let g = storage.base, scale = Real(factor)
        for i in 0..<storage.count { g[i] *= scale }
        return factor
    }
}
