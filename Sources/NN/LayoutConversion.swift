import DNNL

extension ActivationLayout {
    /// oneDNN's format of an activation in this layout (blocks of 8 and 16 only).
    var formatTag: FormatTag {
        switch self {
        case .nchw: .nchw
        case .channelBlocks(8): .nChw8c
        case .channelBlocks(16): .nChw16c
        case .channelBlocks(let b): preconditionFailure("no oneDNN format for channel blocks of \(b)")
        }
    }

    /// The layout oneDNN's descriptor `descriptor` of an (N, C, H, W) activation is in, if it
    /// is one of ours: NCHW, or channel blocks of 8 or 16 that divide C.
    static func of(_ descriptor: MemoryDescriptor) -> ActivationLayout? {
        let dims = descriptor.dims
        guard dims.count == 4, let type = descriptor.dataType else { return nil }
        for layout in [ActivationLayout.nchw, .channelBlocks(16), .channelBlocks(8)] where dims[1] % layout.block == 0 {
            if let candidate = try? MemoryDescriptor(dims: dims, dataType: type, format: layout.formatTag), candidate == descriptor {
                return layout
            }
        }
        return nil
    }

    /// Whether NN's own loops (batch norm, pooling, channel scaling) compute in this layout:
    /// NCHW always, channel blocks in the float32 build (their kernels are float32 C).
    var hasOwnKernels: Bool { self == .nchw || MemoryLayout<Real>.size == 4 }

    /// oneDNN's descriptor of a float32 (N, C, H, W) activation of `shape` in this layout.
    func descriptor(_ shape: Shape) throws -> MemoryDescriptor {
        try MemoryDescriptor.activations(shape[0], shape[1], shape[2], shape[3], .f32, formatTag)
    }
}

/// Copies activations from one layout into another with oneDNN's reorders, one kept per
/// shape and pair of layouts (a warm step builds none).
enum LayoutConversion {
    private struct Key: Hashable {
        let shape: Shape
        let from: ActivationLayout, to: ActivationLayout
    }

    nonisolated(unsafe) private static var reorders: [Key: Reorder] = [:]

    /// `tensor` itself where it is NCHW, else an NCHW copy in `Workspace` memory (hold it
    /// while it is used).
    static func inNCHW(_ tensor: Tensor) -> Tensor {
        guard tensor.layout != .nchw else { return tensor }
        let plain = Workspace.tensor(tensor.shape)
        convert(tensor, into: plain)
        return plain
    }

    /// Writes `source`'s elements into `destination` in its layout; same shape.
    static func convert(_ source: Tensor, into destination: Tensor) {
        precondition(source.shape == destination.shape, "layout conversion from \(source.shape) to \(destination.shape)")
        guard source.layout != destination.layout else { return destination.copy(from: source) }
        let key = Key(shape: source.shape, from: source.layout, to: destination.layout)
        do {
            let reorder = try reorders[key] ?? {
                let made = try Reorder(from: source.layout.descriptor(source.shape), to: destination.layout.descriptor(source.shape))
                reorders[key] = made
                return made
            }()
            try reorder.execute(from: source.data, to: destination.data)
        } catch {
            fatalError("converting \(source.shape) from \(source.layout) to \(destination.layout): \(error)")
        }
    }
}

extension Tensor {
    /// A copy of this activation in `layout`, in new memory: to read channel blocks as NCHW.
    public func converted(to layout: ActivationLayout) -> Tensor {
        let copy = Tensor(zeros: shape).laidOut(layout)
        LayoutConversion.convert(self, into: copy)
        return copy
    }
}

/// Hands a child layer its input in a layout it reads: one that reads only NCHW gets an NCHW
/// copy of a channel-blocked input (kept for its backward), and its input gradient comes
/// back in the blocked layout, converted. One per child, held by the container.
struct InputLayoutBridge {
    /// The child's last input in NCHW, where it had to be converted.
    private var plainInput: Tensor?
    private var convertedLast = false

    mutating func forward(_ layer: any Layer, _ input: Tensor, mode: Mode) -> Tensor {
        convertedLast = !layer.reads(input.layout, shape: input.shape)
        guard convertedLast else { return layer.forward(input, mode: mode) }
        let plain = Tensor.reuse(&plainInput, shape: input.shape)
        LayoutConversion.convert(input, into: plain)
        return layer.forward(plain, mode: mode)
    }

    /// The input gradient in `input`'s layout.
    func backward(_ layer: any Layer, _ input: Tensor, _ gradOutput: Tensor) -> Tensor {
        guard convertedLast, let plainInput else { return layer.backward(input, gradOutput) }
        let plainGradient = layer.backward(plainInput, gradOutput)
        let gradient = Workspace.tensor(input.shape, layout: input.layout)
        LayoutConversion.convert(plainGradient, into: gradient)
        return gradient
    }
}

/// Hands a layer's output on in the layout its reader needs, and the reader's gradient back
/// in the layout the layer produced: for outputs a container or the network reads itself (a
/// concatenated branch, a residual shortcut, a squeeze-and-excitation gate, the network's
/// logits).
struct OutputLayoutBridge {
    /// The layout of the last output.
    private var produced = ActivationLayout.nchw
    private var converted: Tensor?

    /// `output` in `layout`: itself, or a converted copy kept until the next forward.
    mutating func forward(_ output: Tensor, to layout: ActivationLayout) -> Tensor {
        produced = output.layout
        guard output.layout != layout else { return output }
        let copy = Tensor.reuse(&converted, shape: output.shape, layout: layout)
        LayoutConversion.convert(output, into: copy)
        return copy
    }

    /// `gradient` in the layout the output was produced in: itself, or a converted copy in
    /// `Workspace` memory.
    func backward(_ gradient: Tensor) -> Tensor {
        guard gradient.layout != produced else { return gradient }
        let copy = Workspace.tensor(gradient.shape, layout: produced)
        LayoutConversion.convert(gradient, into: copy)
        return copy
    }
}
