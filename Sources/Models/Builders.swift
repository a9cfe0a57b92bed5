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
