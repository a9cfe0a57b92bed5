/// A whole model: its layer tree, every parameter under its PyTorch `state_dict` key, and
/// one contiguous buffer for all parameters and one for all gradients (each `Parameter` is
/// a view into them), so that all-reduce, checkpoints and optimizers see flat memory.
public final class Network {
    public let name: String
    public let root: any Layer
    public let inputChannels: Int
    public let classes: Int
    /// Every parameter with its key, in forward order.
    public let parameters: [(key: String, parameter: Parameter)]
    /// Every layer's buffers with their keys, in forward order.
    public let buffers: [(key: String, buffer: Buffer)]
    /// The batch norms, for what is theirs alone: synchronized statistics, ReLU fusion.
    public let batchNorms: [(key: String, layer: BatchNorm)]
    public let dropouts: [Dropout]
    /// Every convolution, in forward order.
    public let convolutions: [Conv2d]
    public let parameterStorage: Storage
    public let gradientStorage: Storage
    /// Per parameter (same order as `parameters`): its offset in the flat buffers.
    public let parameterOffsets: [Int]
    /// Called during backward with the indices (into `parameters`) whose gradients have just
    /// become final: each leaf layer's, as soon as its container has run its backward.
    public var gradientsReady: ((Range<Int>) -> Void)?
    /// The parameter indices of each leaf layer that has parameters.
    private let leafParameters: [ObjectIdentifier: Range<Int>]

    public init(name: String, root: any Layer, inputChannels: Int, classes: Int) {
        self.name = name
        self.root = root
        self.inputChannels = inputChannels
        self.classes = classes
        var parameters: [(String, Parameter)] = []
        var buffers: [(String, Buffer)] = []
        var batchNorms: [(String, BatchNorm)] = []
        var dropouts: [Dropout] = []
        var convolutions: [Conv2d] = []
        var leafParameters: [ObjectIdentifier: Range<Int>] = [:]
        var containers: [any Container] = []
        func visit(_ layer: any Layer, _ path: String) {
            let first = parameters.count
            for p in layer.parameters { parameters.append((join(path, p.name), p)) }
            if parameters.count > first { leafParameters[ObjectIdentifier(layer)] = first..<parameters.count }
            for b in layer.buffers { buffers.append((join(path, b.name), b)) }
            if let bn = layer as? BatchNorm { batchNorms.append((path, bn)) }
            if let d = layer as? Dropout { dropouts.append(d) }
            if let conv = layer as? Conv2d { convolutions.append(conv) }
            if let container = layer as? any Container { containers.append(container) }
            for child in layer.children { visit(child.layer, join(path, child.name)) }
        }
        visit(root, "")
        self.leafParameters = leafParameters
        self.parameters = parameters
        self.buffers = buffers
        self.batchNorms = batchNorms
        self.dropouts = dropouts
        self.convolutions = convolutions

        let total = parameters.reduce(0) { $0 + $1.1.shape.count }
        parameterStorage = Storage(count: total)
        gradientStorage = Storage(count: total)
        var offset = 0
        var offsets: [Int] = []
        for (_, p) in parameters {
            offsets.append(offset)
            let n = p.shape.count
            let value = Tensor(shape: p.shape, storage: Storage(viewing: parameterStorage, offset: offset, count: n))
            value.copy(from: p.value)
            p.value = value
            p.grad = Tensor(shape: p.shape, storage: Storage(viewing: gradientStorage, offset: offset, count: n))
            offset += n
        }
        parameterOffsets = offsets
        if let first = firstConvolution(root) { first.computesInputGradient = false }
        fuseElementwiseLayers(root)
        keepActivationsInChannelBlocks(true)
        for container in containers {
            container.didFinishChildBackward = { [unowned self] child in self.childFinishedBackward(child) }
        }
    }

    private func childFinishedBackward(_ child: any Layer) {
        guard let gradientsReady, let ready = leafParameters[ObjectIdentifier(child)] else { return }
        gradientsReady(ready)
    }

    public var parameterCount: Int { parameterStorage.count }

    /// Logits [N, classes] for images [N, C, H, W]. Starts a pass over the workspace
    /// (`Workspace.rewind`): a warm step takes the same slots again.
    public func forward(_ images: Tensor, mode: Mode) -> Tensor {
        Workspace.rewind()
        return outputBridge.forward(root.forward(images, mode: mode), to: .nchw)
    }

    /// The root's output in NCHW, and the logits' gradient in the root's layout.
    private var outputBridge = OutputLayoutBridge()

    /// Adds the gradients of the loss to every `Parameter.grad`, given d(loss)/d(logits).
    /// Ends the step's pass over the workspace (`Workspace.settle`).
    public func backward(_ images: Tensor, _ gradLogits: Tensor) {
        _ = root.backward(images, outputBridge.backward(gradLogits))
        // A root that is itself a leaf has no container to report it.
        if let gradientsReady, let ready = leafParameters[ObjectIdentifier(root)] { gradientsReady(ready) }
        Workspace.settle()
    }

    /// Whether convolutions on oneDNN hand their output on in the channel blocks they write
    /// (the default): the layers after them that read those (batch norm, activations, sums,
    /// concatenation, more convolutions) keep them, and only the others get NCHW copies.
    /// Off, every convolution reorders its output to NCHW, as a layer used alone does.
    public func keepActivationsInChannelBlocks(_ keep: Bool) {
        for conv in convolutions { conv.emitsChannelBlocks = keep }
    }

    public func zeroGradients() { gradientStorage.base.update(repeating: 0, count: gradientStorage.count) }

    /// Sets the probability of every dropout layer of the given kinds (0 disables them); by
    /// default those `--dropout` means, element and channel dropout, not stochastic depth.
    public func setDropout(_ probability: Real, granularities: Set<Dropout.Granularity> = [.element, .channel]) {
        for d in dropouts where granularities.contains(d.granularity) { d.probability = probability }
    }

    /// Gives every dropout layer its own stream derived from `seed`.
    public func seedDropout(_ seed: UInt64) {
        for (i, d) in dropouts.enumerated() { d.generator = SeededGenerator(seed: seed &+ UInt64(i) &* 0x9E37_79B9) }
    }

    /// A parameter by its `state_dict` key.
    public func parameter(_ key: String) -> Parameter? { parameters.first { $0.key == key }?.parameter }

    /// The `state_dict` keys of the classifier: the parameters of the last layer that has
    /// any, which produces the `classes` logits (a Linear in every network but NiN, where it
    /// is a 1×1 convolution). `--replace-head` starts these afresh.
    public var classifierKeys: [String] {
        guard let last = leafParameters.values.max(by: { $0.lowerBound < $1.lowerBound }) else { return [] }
        return parameters[last].map(\.key)
    }

    // MARK: - State dict

    /// One entry of the PyTorch `state_dict`: a float tensor (parameter or statistic) or an
    /// int64 counter (`num_batches_tracked`).
    public enum StateValue {
        case tensor(Tensor)
        case counter(get: () -> Int64, set: (Int64) -> Void)
    }

    /// Every `state_dict` key of the reference model with its value: parameters, then the
    /// buffers that belong to the state dict (not random generators).
    public var stateDict: [(key: String, value: StateValue)] {
        parameters.map { ($0.key, .tensor($0.parameter.value)) } + buffers.compactMap { key, buffer in
            switch buffer.value {
            case let .statistic(t, _): (key, StateValue.tensor(t))
            case let .counter(get, set): (key, .counter(get: get, set: set))
            case .generator: nil
            }
        }
    }

    /// The random generators among the buffers (dropout's), in forward order.
    public var generators: [(get: () -> [UInt64], set: ([UInt64]) -> Void)] {
        buffers.compactMap { if case let .generator(get, set) = $0.buffer.value { (get, set) } else { nil } }
    }

    /// The statistics among the buffers (batch norm's running mean and variance).
    public var statistics: [Tensor] {
        buffers.compactMap { if case let .statistic(t, _) = $0.buffer.value { t } else { nil } }
    }

    // MARK: - Description

    /// One leaf layer at a given input: where it sits, what it is, what it produces.
    public struct LayerInfo {
        public var path: String
        public var summary: String
        public var outputShape: Shape
        public var parameterCount: Int
        public var flops: Int
    }

    /// Each leaf layer's output shape, parameter count and FLOPs for one image of side
    /// `side`; throws a `ShapeError` naming the layer where the shape collapses.
    public func describe(side: Int) throws -> [LayerInfo] {
        var list: [LayerInfo] = []
        _ = try describe(root, path: "", input: Shape(1, inputChannels, side, side), into: &list)
        return list
    }

    /// Forward FLOPs for one image of side `side` (a multiply-add counts 2).
    public func flopsPerImage(side: Int) -> Int { root.flops(for: Shape(1, inputChannels, side, side)) }

    private func describe(_ layer: any Layer, path: String, input: Shape, into list: inout [LayerInfo]) throws -> Shape {
        switch layer {
        case let seq as Sequential:
            return try seq.children.reduce(input) { shape, child in
                try describe(child.layer, path: join(path, child.name), input: shape, into: &list)
            }
        case is any Container:
            // Branches (concatenation, residual, gate) all read the container's input.
            for child in layer.children { _ = try describe(child.layer, path: join(path, child.name), input: input, into: &list) }
            return try withPath(path.isEmpty ? nil : path) { try layer.outputShape(for: input) }
        default:
            // A top-level layer without a key (activation, pooling) is placed by its predecessor.
            let label = path.isEmpty ? "after \(list.last(where: { !$0.path.isEmpty })?.path ?? "input")" : path
            let out = try withPath(label) { try layer.outputShape(for: input) }
            list.append(LayerInfo(path: path, summary: layer.summary, outputShape: out,
                                  parameterCount: layer.parameters.reduce(0) { $0 + $1.shape.count },
                                  flops: layer.flops(for: input)))
            return out
        }
    }

    private func firstConvolution(_ layer: any Layer) -> Conv2d? {
        if let conv = layer as? Conv2d { return conv }
        if let seq = layer as? Sequential, let first = seq.children.first { return firstConvolution(first.layer) }
        return nil
    }

    /// Saves activations a pass or a buffer where an activation follows another layer in the
    /// same sequence (a layer object used at more than one place is left alone):
    /// - a batch norm applies the ReLU after it itself (`BatchNorm.fusedReLU`), and so does a
    ///   convolution (`Conv2d.fusedReLU`: on oneDNN, in the same pass as a post-op);
    /// - a ReLU or ReLU6 overwrites the output of an `OverwritableOutput` layer before it
    ///   (`Activation.writesInPlace`).
    private func fuseElementwiseLayers(_ root: any Layer) {
        var uses: [ObjectIdentifier: Int] = [:], neighbours: [(any Layer, Activation)] = []
        func visit(_ layer: any Layer) {
            uses[ObjectIdentifier(layer), default: 0] += 1
            if let sequence = layer as? Sequential {
                for (a, b) in zip(sequence.children, sequence.children.dropFirst()) {
                    if let activation = b.layer as? Activation { neighbours.append((a.layer, activation)) }
                }
            }
            for child in layer.children { visit(child.layer) }
        }
        visit(root)
        for (layer, activation) in neighbours where uses[ObjectIdentifier(layer)] == 1 && uses[ObjectIdentifier(activation)] == 1 {
            if let bn = layer as? BatchNorm, activation.kind == .relu {
                bn.fusedReLU = true
                activation.isFusedIntoLayerBefore = true
            } else if let conv = layer as? Conv2d, activation.kind == .relu {
                conv.fusedReLU = true
                activation.isFusedIntoLayerBefore = true
            } else if layer is any OverwritableOutput, activation.kind == .relu || activation.kind == .relu6 {
                activation.writesInPlace = true
            }
        }
    }
}

/// `a.b` for a key path, skipping empty or missing parts.
func join(_ path: String, _ name: String?) -> String {
    guard let name, !name.isEmpty else { return path }
    return path.isEmpty ? name : "\(path).\(name)"
}
