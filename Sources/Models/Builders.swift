import NN

// Small constructors that keep the model files close to `reference/models.py`.

func conv(_ cin: Int, _ cout: Int, _ k: Int, stride: Int = 1, padding: Int = 0, groups: Int = 1, bias: Bool = true) -> Conv2d {
    Conv2d(cin, cout, kernel: k, stride: stride, padding: padding, groups: groups, bias: bias)
}
func relu() -> Activation { Activation(.relu) }
func sigmoid() -> Activation { Activation(.sigmoid) }
func maxPool(_ k: Int, _ stride: Int, padding: Int = 0) -> Pool2d { Pool2d(.max, kernel: k, stride: stride, padding: padding) }
func avgPool(_ k: Int, _ stride: Int) -> Pool2d { Pool2d(.average, kernel: k, stride: stride) }

/// A child whose name becomes part of its parameters' keys.
func named(_ name: String, _ layer: any Layer) -> Child { Child(name, layer) }
/// A child that adds nothing to the keys (activations, pooling, glue).
func plain(_ layer: any Layer) -> Child { Child(nil, layer) }

/// torchvision's `Conv2dNormActivation`: a convolution without bias (same padding for an odd
/// kernel), batch norm and an optional activation, keyed "0" and "1" as in its `Sequential`.
func convNormActivation(_ cin: Int, _ cout: Int, _ k: Int, stride: Int = 1, groups: Int = 1,
                        eps: Real = 1e-5, momentum: Real = 0.1, activation: Activation.Kind?) -> Sequential {
    Sequential([named("0", conv(cin, cout, k, stride: stride, padding: (k - 1) / 2, groups: groups, bias: false)),
                named("1", BatchNorm(cout, eps: eps, momentum: momentum))]
               + (activation.map { [plain(Activation($0))] } ?? []))
}

/// torchvision's `SqueezeExcitation`: global average pool, `fc1` (1×1 conv) → `inner` →
/// `fc2` → `gate`, scaling the channels.
func torchvisionSqueezeExcitation(_ channels: Int, squeeze: Int, inner: Activation.Kind, gate: Activation.Kind) -> ChannelScale {
    ChannelScale(gate: Sequential([
        plain(GlobalAvgPool()), named("fc1", conv(channels, squeeze, 1)), plain(Activation(inner)),
        named("fc2", conv(squeeze, channels, 1)), plain(Activation(gate)),
    ]))
}

/// torchvision's `_make_divisible`: `value` rounded to the nearest multiple of `divisor` (at
/// least `divisor`), but never more than 10% below `value`.
func makeDivisible(_ value: Double, _ divisor: Int = 8) -> Int {
    var rounded = max(divisor, Int(value + Double(divisor) / 2) / divisor * divisor)
    if Double(rounded) < 0.9 * value { rounded += divisor }
    return rounded
}
