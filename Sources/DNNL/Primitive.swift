/// A built oneDNN primitive with one memory object per argument, executed on caller buffers.
///
/// Every public primitive type of this module owns one or more of these. Building creates
/// everything (memory objects, the argument array, room in the shared scratchpad);
/// executing only points the memory objects at the caller's buffers and runs.
final class Primitive {
    /// The primitive descriptor: what oneDNN chose (implementation, layouts).
    let descriptor: OpaquePointer
    private let handle: OpaquePointer
    private let context: Context
    /// The arguments in the order of `memories` and `executionArguments`.
    private let arguments: [Argument]
    private let memories: [OpaquePointer]
    private let executionArguments: OneDNN.ExecutionArguments
    /// Index of the scratchpad in `memories`, nil when the primitive needs none.
    private let scratchpadSlot: Int?

    /// Builds the primitive described by `descriptor` (taking ownership of it) with memory
    /// objects for `arguments`; arguments whose descriptor is empty are dropped.
    init(descriptor: OpaquePointer, arguments requested: [Argument], context: Context) throws {
        self.descriptor = descriptor
        self.context = context
        do {
            handle = try OneDNN.makePrimitive(descriptor)
        } catch {
            OneDNN.destroy(primitiveDescriptor: descriptor)
            throw error
        }
        var arguments: [Argument] = []
        var memories: [OpaquePointer] = []
        for argument in requested + [.scratchpad] {
            let md = OneDNN.argumentDescriptor(descriptor, argument)
            if OneDNN.isZero(md) { continue }
            guard let memory = try? OneDNN.makeMemory(md, engine: context.engine) else {
                memories.forEach(OneDNN.destroy(memory:))
                OneDNN.destroy(primitive: handle)
                OneDNN.destroy(primitiveDescriptor: descriptor)
                throw DNNLError("dnnl_memory_create for \(argument) of \(OneDNN.implementation(descriptor)) failed")
            }
            arguments.append(argument)
            memories.append(memory)
        }
        self.arguments = arguments
        self.memories = memories
        executionArguments = OneDNN.allocateArguments(Array(zip(arguments, memories)))
        scratchpadSlot = arguments.firstIndex(of: .scratchpad)
        if scratchpadSlot != nil {
            context.reserveScratchpad(OneDNN.byteCount(OneDNN.argumentDescriptor(descriptor, .scratchpad)))
        }
    }

    deinit {
        executionArguments.deallocate()
        memories.forEach(OneDNN.destroy(memory:))
        OneDNN.destroy(primitive: handle)
        OneDNN.destroy(primitiveDescriptor: descriptor)
    }

    /// The implementation oneDNN chose, e.g. "jit:avx512_core" or "jit_bf16:avx512_core_bf16".
    var implementation: String { OneDNN.implementation(descriptor) }

    /// The descriptor oneDNN expects for `argument` (empty if the primitive does not use it).
    func memoryDescriptor(_ argument: Argument) -> MemoryDescriptor {
        MemoryDescriptor(raw: OneDNN.argumentDescriptor(descriptor, argument))
    }

    /// Whether the primitive takes `argument`.
    func uses(_ argument: Argument) -> Bool { arguments.contains(argument) }

    /// Points `argument`'s memory object at `buffer` for the next `execute()`.
    ///
    /// - Throws: if the primitive has no such argument (a caller bug worth a message).
    func bind(_ argument: Argument, _ buffer: UnsafeRawPointer?) throws {
        guard let slot = arguments.firstIndex(of: argument) else {
            throw DNNLError("\(implementation) has no \(argument); it takes \(arguments.map(\.index))")
        }
        try OneDNN.bind(memories[slot], to: buffer)
    }

    /// Runs the primitive on the buffers bound last (and the shared scratchpad).
    func execute() throws {
        if let scratchpadSlot { try OneDNN.bind(memories[scratchpadSlot], to: context.scratchpad) }
        do {
            try OneDNN.execute(handle, stream: context.stream, arguments: executionArguments, count: memories.count)
        } catch let error as DNNLError {
            let bound = arguments.map { "\($0.index): \(memoryDescriptor($0))" }.joined(separator: ", ")
            throw DNNLError("\(error.message) in \(implementation) with arguments [\(bound)]")
        }
    }
}
