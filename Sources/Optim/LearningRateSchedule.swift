import Foundation
import NN

/// The learning rate at each optimizer step: constant, step decay or cosine decay to zero,
/// after an optional linear warmup.
public struct LearningRateSchedule: Sendable {
    public enum Kind: String, CaseIterable, Sendable {
        case constant, step, cosine
    }

    public var kind: Kind
    public var baseRate: Real
    /// Steps of linear warmup from baseRate/warmupSteps up to baseRate.
    public var warmupSteps: Int
    /// Steps in the whole run (cosine decays to zero at the last one).
    public var totalSteps: Int
    /// For step decay: multiply by `gamma` every `decaySteps` steps.
    public var decaySteps: Int
    public var gamma: Real

    public init(kind: Kind, baseRate: Real, warmupSteps: Int = 0, totalSteps: Int, decaySteps: Int = 1, gamma: Real = 0.1) {
        self.kind = kind
        self.baseRate = baseRate
        self.warmupSteps = max(warmupSteps, 0)
        self.totalSteps = max(totalSteps, 1)
        self.decaySteps = max(decaySteps, 1)
        self.gamma = gamma
    }

    /// The rate for the step numbered `step` (0-based).
    public func rate(at step: Int) -> Real {
        if step < warmupSteps { return baseRate * Real(step + 1) / Real(warmupSteps) }
        switch kind {
        case .constant:
            return baseRate
        case .step:
            return baseRate * Real(pow(Double(gamma), Double(step / decaySteps)))
        case .cosine:
            let span = max(totalSteps - warmupSteps, 1)
            let progress = min(Double(step - warmupSteps) / Double(span), 1)
            return baseRate * Real(0.5 * (1 + cos(Double.pi * progress)))
        }
    }
}
