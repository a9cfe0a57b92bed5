/// A fully connected layer (PyTorch's Linear): destination (N, O) = source · weightsᵀ + bias,
/// where source is (N, C) or (N, C, H, W) and weights have the same trailing dims.
///
/// Layouts are oneDNN's choice (`any`): read the descriptors and reorder. With `.bf16`,
/// source, weights, destination and diffSource are bf16; bias, diffBias and diffWeights f32.
public final class InnerProduct {
    public let dataType: DataType
    public let hasBias: Bool
    private let forwardPrimitive: Primitive
    private let backwardDataPrimitive: Primitive?
    private let backwardWeightsPrimitive: Primitive?

    public init(sourceDims: [Int], outputs: Int, hasBias: Bool = true, dataType: DataType = .f32,
                training: Bool = true, context: Context? = nil) throws {
        guard [2, 4].contains(sourceDims.count), sourceDims.allSatisfy({ $0 > 0 }), outputs > 0 else {
            throw DNNLError("inner product of source \(sourceDims) to \(outputs) outputs: expected positive (N, C) or (N, C, H, W)")
        }
        let context = try context ?? DNNLRuntime.context
        self.dataType = dataType
        self.hasBias = hasBias
        let weightsDims = [outputs] + sourceDims.dropFirst()
        let any = { (dims: [Int], type: DataType) in try MemoryDescriptor(dims: dims, dataType: type, format: .any) }
        let bias = hasBias ? try MemoryDescriptor(dims: [outputs], dataType: .f32, format: .x) : nil
        let destinationDims = [sourceDims[0], outputs]
        let forward = try Primitive(
            descriptor: OneDNN.innerProductForward(
                training: training, source: any(sourceDims, dataType), weights: any(weightsDims, dataType), bias: bias,
                destination: any(destinationDims, dataType), engine: context.engine),
            arguments: [.source, .weights, .bias, .destination], context: context)
        forwardPrimitive = forward
        guard training else {
            backwardDataPrimitive = nil
            backwardWeightsPrimitive = nil
            return
        }
        backwardDataPrimitive = try Primitive(
            descriptor: OneDNN.innerProductBackwardData(
                diffSource: forward.memoryDescriptor(.source), weights: any(weightsDims, dataType),
                diffDestination: forward.memoryDescriptor(.destination), forward: forward.descriptor, engine: context.engine),
            arguments: [.diffDestination, .weights, .diffSource], context: context)
        backwardWeightsPrimitive = try Primitive(
            descriptor: OneDNN.innerProductBackwardWeights(
                source: forward.memoryDescriptor(.source), diffWeights: any(weightsDims, .f32), diffBias: bias,
                diffDestination: forward.memoryDescriptor(.destination), forward: forward.descriptor, engine: context.engine),
            arguments: [.source, .diffDestination, .diffWeights, .diffBias], context: context)
    }

    public var source: MemoryDescriptor { forwardPrimitive.memoryDescriptor(.source) }
    public var weights: MemoryDescriptor { forwardPrimitive.memoryDescriptor(.weights) }
    public var destination: MemoryDescriptor { forwardPrimitive.memoryDescriptor(.destination) }
    public var backwardDataWeights: MemoryDescriptor? { backwardDataPrimitive?.memoryDescriptor(.weights) }
    public var backwardDataDiffSource: MemoryDescriptor? { backwardDataPrimitive?.memoryDescriptor(.diffSource) }
    /// Always f32.
    public var diffWeights: MemoryDescriptor? { backwardWeightsPrimitive?.memoryDescriptor(.diffWeights) }
    public var implementation: String { forwardPrimitive.implementation }

    public func forward(source: UnsafeRawPointer, weights: UnsafeRawPointer, bias: UnsafeRawPointer?,
                        destination: UnsafeMutableRawPointer) throws {
        guard (bias != nil) == hasBias else {
            throw DNNLError("inner product: bias pointer \(bias == nil ? "missing" : "given") but hasBias is \(hasBias)")
        }
        try forwardPrimitive.bind(.source, source)
        try forwardPrimitive.bind(.weights, weights)
        if let bias { try forwardPrimitive.bind(.bias, bias) }
        try forwardPrimitive.bind(.destination, destination)
        try forwardPrimitive.execute()
    }

    public func backwardData(diffDestination: UnsafeRawPointer, weights: UnsafeRawPointer,
                             diffSource: UnsafeMutableRawPointer) throws {
        guard let primitive = backwardDataPrimitive else {
            throw DNNLError("inner product was built with training: false; backwardData needs training: true")
        }
        try primitive.bind(.diffDestination, diffDestination)
        try primitive.bind(.weights, weights)
        try primitive.bind(.diffSource, diffSource)
        try primitive.execute()
    }

    /// Overwrites diffWeights (f32) and diffBias (f32).
    public func backwardWeights(source: UnsafeRawPointer, diffDestination: UnsafeRawPointer,
                                diffWeights: UnsafeMutableRawPointer, diffBias: UnsafeMutableRawPointer?) throws {
        guard let primitive = backwardWeightsPrimitive else {
            throw DNNLError("inner product was built with training: false; backwardWeights needs training: true")
        }
        guard (diffBias != nil) == hasBias else {
            throw DNNLError("inner product: diffBias pointer \(diffBias == nil ? "missing" : "given") but hasBias is \(hasBias)")
        }
        try primitive.bind(.source, source)
        try primitive.bind(.diffDestination, diffDestination)
        try primitive.bind(.diffWeights, diffWeights)
        if let diffBias { try primitive.bind(.diffBias, diffBias) }
        try primitive.execute()
    }
}
