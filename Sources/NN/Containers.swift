import CKernels

// MARK: - Sequential

/// Children applied one after another.
public final class Sequential: Container {
    public let children: [Child]
    /// Each child's last output: the inputs of the next child's backward.
    private var outputs: [Tensor?]
    private var bridges: [InputLayoutBridge]
    public var didFinishChildBackward: ((any Layer) -> Void)?

    public init(_ children: [Child]) {
        self.children = children
        outputs = Array(repeating: nil, count: children.count)
        bridges = Array(repeating: InputLayoutBridge(), count: children.count)
    }

    /// Unnamed children, for paths that carry no parameters of their own.
    public convenience init(_ layers: [any Layer]) { self.init(layers.map { Child(nil, $0) }) }

    public var summary: String { "Sequential" }

    public func outputShape(for input: Shape) throws -> Shape {
        try children.reduce(input) { shape, child in try withPath(child.name) { try child.layer.outputShape(for: shape) } }
    }

    public func flops(for input: Shape) -> Int {
        var shape = input, total = 0
        for child in children {
            total += child.layer.flops(for: shape)
            guard let next = try? child.layer.outputShape(for: shape) else { break }
            shape = next
        }
        return total
    }

    /// Any layout: each child gets one it reads.
    public func reads(_ layout: ActivationLayout, shape: Shape) -> Bool { true }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        var x = input
        for i in children.indices {
            x = bridges[i].forward(children[i].layer, x, mode: mode)
            outputs[i] = x
        }
        return x
    }

    public func backward(_ input: Tensor, _ gradOutput: Tensor) -> Tensor {
        var g = gradOutput
        for i in children.indices.reversed() {
            g = bridges[i].backward(children[i].layer, i == 0 ? input : outputs[i - 1]!, g)
            didFinishChildBackward?(children[i].layer)
        }
        return g
    }
}

// MARK: - Concat

/// Parallel branches over the same input, their outputs concatenated on channels
/// (Inception blocks, DenseNet layers).
public final class Concat: Container, OverwritableOutput {
    public let children: [Child]
    public var didFinishChildBackward: ((any Layer) -> Void)?
    private var output: Tensor?
    /// Per branch: its last output, in the layout of the concatenation.
    private var branchOutputs: [Tensor?]
    private var bridges: [InputLayoutBridge]
    /// Per branch: its output in the concatenation's layout, its gradient back in its own.
    private var outputBridges: [OutputLayoutBridge]

    public init(_ branches: [Child]) {
        children = branches
        branchOutputs = Array(repeating: nil, count: branches.count)
        bridges = Array(repeating: InputLayoutBridge(), count: branches.count)
        outputBridges = Array(repeating: OutputLayoutBridge(), count: branches.count)
    }

    public convenience init(_ branches: [any Layer]) { self.init(branches.map { Child(nil, $0) }) }

    public var summary: String { "Concat" }

    public func outputShape(for input: Shape) throws -> Shape {
        var channels = 0
        var first: Shape?
        for child in children {
            let s = try withPath(child.name) { try child.layer.outputShape(for: input) }
            guard s.rank == 4 else { throw ShapeError(layer: summary, "branch output \(s) is not N×C×H×W") }
            if let f = first, f[2] != s[2] || f[3] != s[3] {
                throw ShapeError(layer: summary, "branch outputs \(f) and \(s) differ in height or width")
            }
            first = first ?? s
            channels += s[1]
        }
        guard let f = first else { throw ShapeError(layer: summary, "has no branches") }
        return Shape(f[0], channels, f[2], f[3])
    }

    public func flops(for input: Shape) -> Int { children.reduce(0) { $0 + $1.layer.flops(for: input) } }

    /// Any layout: each branch gets one it reads.
    public func reads(_ layout: ActivationLayout, shape: Shape) -> Bool { true }

    // Each branch: (N, C_b, H, W) -> output (N, ΣC_b, H, W). In NCHW and in channel blocks
    // alike, an example's channels of one branch are one contiguous run: the concatenation
    // copies runs. Branches that agree on a layout keep it; otherwise all go to NCHW.
    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        var channels = 0
        for b in children.indices {
            let y = bridges[b].forward(children[b].layer, input, mode: mode)
            channels += y.shape[1]
            branchOutputs[b] = y
        }
        let firstLayout = branchOutputs[0]!.layout
        let layout = branchOutputs.allSatisfy({ $0!.layout == firstLayout }) ? firstLayout : .nchw
        for b in children.indices { branchOutputs[b] = outputBridges[b].forward(branchOutputs[b]!, to: layout) }
        let first = branchOutputs[0]!.shape
        let n = input.shape[0], area = first[2] * first[3]
        let out = Tensor.reuse(&output, shape: Shape(n, channels, first[2], first[3]), layout: layout)
        for i in 0..<n {
            var offset = 0
            for b in children.indices {
                let y = branchOutputs[b]!
                let block = y.shape[1] * area
                (out.data + (i * channels) * area + offset).update(from: y.data + i * block, count: block)
                offset += block
            }
        }
        return out
    }

    public func backward(_ input: Tensor, _ gradOutput: Tensor) -> Tensor {
        let n = gradOutput.shape[0], channels = gradOutput.shape[1], area = gradOutput.shape[2] * gradOutput.shape[3]
        let dx = Workspace.tensor(input.shape, layout: input.layout)
        var offset = 0
        for b in children.indices {
            // The branch's slice of the output gradient, made contiguous, in the layout the branch produced.
            let branchShape = branchOutputs[b]!.shape
            let g = Workspace.tensor(branchShape, layout: gradOutput.layout)
            let block = branchShape[1] * area
            for i in 0..<n {
                (g.data + i * block).update(from: gradOutput.data + i * channels * area + offset, count: block)
            }
            offset += block
            let gx = bridges[b].backward(children[b].layer, input, outputBridges[b].backward(g))
            didFinishChildBackward?(children[b].layer)
            if b == 0 { dx.copy(from: gx) } else { BLAS.axpy(dx.count, alpha: 1, x: gx.data, y: dx.data) }
        }
        return dx
    }
}

// MARK: - Residual

/// body(x) + shortcut(x), where the shortcut is the identity unless given (ResNet's 1×1
/// convolution when the shape changes).
public final class Residual: Container, OverwritableOutput {
    public let children: [Child]
    public var didFinishChildBackward: ((any Layer) -> Void)?
    private let body: any Layer, shortcut: (any Layer)?
    private var output: Tensor?
    private var bodyBridge = InputLayoutBridge(), shortcutBridge = InputLayoutBridge()
    /// The shortcut's output in the body's layout, its gradient back in its own.
    private var sideBridge = OutputLayoutBridge()

    /// `body` adds no name to its parameters' keys; `shortcut` is named as given.
    public init(body: any Layer, shortcut: Child? = nil) {
        self.body = body
        self.shortcut = shortcut?.layer
        children = [Child(nil, body)] + (shortcut.map { [$0] } ?? [])
    }

    public var summary: String { "Residual" }

    public func outputShape(for input: Shape) throws -> Shape {
        let main = try body.outputShape(for: input)
        let side = try withPath(children.count > 1 ? children[1].name : nil) { try shortcut?.outputShape(for: input) ?? input }
        guard main == side else {
            throw ShapeError(layer: summary, "body gives \(main) but the shortcut gives \(side)")
        }
        return main
    }

    public func flops(for input: Shape) -> Int {
        body.flops(for: input) + (shortcut?.flops(for: input) ?? 0) + input.count
    }

    /// Any layout: each branch gets one it reads; the sum is in the body's.
    public func reads(_ layout: ActivationLayout, shape: Shape) -> Bool { true }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let main = bodyBridge.forward(body, input, mode: mode)
        let side = sideBridge.forward(shortcut.map { shortcutBridge.forward($0, input, mode: mode) } ?? input, to: main.layout)
        let y = Tensor.reuse(&output, shape: main.shape, layout: main.layout)
        let sum = ElementwiseSum(a: main.data, b: side.data, sum: y.data)
        Parallel.forEach(y.count, grain: Parallel.grain(work: 1), sum) { Parallel.arguments($0, as: ElementwiseSum.self)($1..<$2) }
        return y
    }

    public func backward(_ input: Tensor, _ gradOutput: Tensor) -> Tensor {
        let main = bodyBridge.backward(body, input, gradOutput)
        didFinishChildBackward?(body)
        let sideGradOutput = sideBridge.backward(gradOutput)
        let side: Tensor
        if let shortcut {
            side = shortcutBridge.backward(shortcut, input, sideGradOutput)
            didFinishChildBackward?(shortcut)
        } else {
            side = sideGradOutput
        }
        let dx = Workspace.tensor(input.shape, layout: input.layout)
        let sum = ElementwiseSum(a: main.data, b: side.data, sum: dx.data)
        Parallel.forEach(dx.count, grain: Parallel.grain(work: 1), sum) { Parallel.arguments($0, as: ElementwiseSum.self)($1..<$2) }
        return dx
    }
}

// MARK: - Identity

/// Passes its input through (DenseNet's kept features in a `Concat`).
public final class Identity: Layer {
    public init() {}
    public var summary: String { "Identity" }
    public func outputShape(for input: Shape) throws -> Shape { input }
    public func flops(for input: Shape) -> Int { 0 }
    public func reads(_ layout: ActivationLayout, shape: Shape) -> Bool { true }
    public func forward(_ input: Tensor, mode: Mode) -> Tensor { input }
    public func backward(_ input: Tensor, _ gradOutput: Tensor) -> Tensor { gradOutput }
}

// MARK: - Helpers

/// Runs `body`, prefixing the path of any `ShapeError` it throws with `name`.
func withPath<T>(_ name: String?, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch var error as ShapeError {
        if let name { error.path = error.path.isEmpty ? name : "\(name).\(error.path)" }
        throw error
    }
}

// MARK: - ChannelScale

/// x ⊙ gate(x), the gate's (N, C, 1, 1) output broadcast over H×W: squeeze-and-excitation
/// (SE-ResNet, MobileNetV3, EfficientNet). The gate's parameters are keyed as its own (a
/// child without a name), as in torchvision's `SqueezeExcitation`.
public final class ChannelScale: Container, OverwritableOutput {
    public let children: [Child]
    public var didFinishChildBackward: ((any Layer) -> Void)?
    private let gate: any Layer
    private var output: Tensor?, gradScale: Tensor?
    /// The gate's output of the last forward (its own buffer, valid until its next forward),
    /// in NCHW, and its gradient back in the gate's layout.
    private var scale: Tensor?
    private var gateBridge = OutputLayoutBridge()

    public init(gate: any Layer) {
        self.gate = gate
        children = [Child(nil, gate)]
    }

    public var summary: String { "ChannelScale" }

    public func outputShape(for input: Shape) throws -> Shape {
        guard input.rank == 4 else { throw ShapeError(layer: summary, "expects N×C×H×W input, got \(input)") }
        let scale = try gate.outputShape(for: input)
        guard scale == Shape(input[0], input[1], 1, 1) else {
            throw ShapeError(layer: summary, "the gate gives \(scale) for input \(input); expected \(Shape(input[0], input[1], 1, 1))")
        }
        return input
    }

    public func flops(for input: Shape) -> Int { gate.flops(for: input) + input.count }

    /// NCHW, and in the float32 build channel blocks (the gate gets the same input).
    public func reads(_ layout: ActivationLayout, shape: Shape) -> Bool {
        layout.hasOwnKernels
    }

    // x: (N, C, H, W), gate(x): (N, C, 1, 1) -> y: (N, C, H, W), in the input's layout
    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let scale = gateBridge.forward(gate.forward(input, mode: mode), to: .nchw)
        self.scale = scale
        let y = Tensor.reuse(&output, shape: input.shape, layout: input.layout)
        let pass = PlaneScaling(input, scale: scale.data, x: input.data, y: y.data)
        Parallel.forEach(pass.planes, grain: pass.grain, pass) { Parallel.arguments($0, as: PlaneScaling.self).scale($1..<$2) }
        return y
    }

    /// dx = dy ⊙ s + gate's backward of ds, where ds = Σ_HW dy ⊙ x.
    public func backward(_ input: Tensor, _ gradOutput: Tensor) -> Tensor {
        let ds = Tensor.reuse(&gradScale, shape: Shape(input.shape[0], input.shape[1], 1, 1))
        let sums = PlaneScaling(input, scale: ds.data, x: input.data, y: gradOutput.data)
        Parallel.forEach(sums.planes, grain: sums.grain, sums) { Parallel.arguments($0, as: PlaneScaling.self).sumProducts($1..<$2) }
        let gateGradient = gate.backward(input, gateBridge.backward(ds))
        didFinishChildBackward?(gate)
        let dx = Workspace.tensor(input.shape, layout: input.layout)
        dx.copy(from: gateGradient)
        let adding = PlaneScaling(input, scale: scale!.data, x: gradOutput.data, y: dx.data)
        Parallel.forEach(adding.planes, grain: adding.grain, adding) { Parallel.arguments($0, as: PlaneScaling.self).addScaled($1..<$2) }
        return dx
    }
}

/// ChannelScale's passes over a range of (example, channel) planes of `area` elements, with
/// one scale per plane; or of channel-blocked planes (example, block of `block` channels)
/// of `area` rows, whose lanes' scales are `block` apart.
private struct PlaneScaling {
    let area: Int, block: Int, planes: Int
    let scale: UnsafeMutablePointer<Real>, x: UnsafeMutablePointer<Real>, y: UnsafeMutablePointer<Real>

    /// Planes of `activation`'s shape and layout.
    init(_ activation: Tensor, scale: UnsafeMutablePointer<Real>, x: UnsafeMutablePointer<Real>, y: UnsafeMutablePointer<Real>) {
        (block, area) = (activation.layout.block, activation.shape[2] * activation.shape[3])
        planes = activation.shape[0] * activation.shape[1] / block
        (self.scale, self.x, self.y) = (scale, x, y)
    }

    var grain: Int { Parallel.grain(work: area * block) }

    /// y = x · scale
    func scale(_ planes: Range<Int>) {
        for p in planes {
            let x = x + p * area * block, y = y + p * area * block
            #if !CNN_FLOAT64
            if block > 1 { cnn_blocked_scale_f32(x, y, area, block, scale + p * block, 0); continue }
            #endif
            let s = scale[p]
            for i in 0..<area { y[i] = x[i] * s }
        }
    }

    /// y += x · scale
    func addScaled(_ planes: Range<Int>) {
        for p in planes {
            let x = x + p * area * block, y = y + p * area * block
            #if !CNN_FLOAT64
            if block > 1 { cnn_blocked_scale_f32(x, y, area, block, scale + p * block, 1); continue }
            #endif
            let s = scale[p]
            for i in 0..<area { y[i] += x[i] * s }
        }
    }

    /// scale = Σ x · y over each plane
    func sumProducts(_ planes: Range<Int>) {
        if block > 1 {
            for p in planes {
                Sums.forEachLane(x + p * area * block, y + p * area * block, rows: area, block: block) { scale[p * block + $0] = Real($1) }
            }
            return
        }
        for p in planes { scale[p] = Real(Sums.dot(x + p * area, y + p * area, area)) }
    }
}

/// sum = a + b over a range of elements.
private struct ElementwiseSum {
    let a: UnsafeMutablePointer<Real>, b: UnsafeMutablePointer<Real>, sum: UnsafeMutablePointer<Real>

    func callAsFunction(_ range: Range<Int>) {
        for i in range { sum[i] = a[i] + b[i] }
    }
}
