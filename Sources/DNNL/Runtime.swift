// The process-wide oneDNN state: engine, stream, scratchpad, threads; and the module's
// vocabulary types (error, data type, format tag).

/// An error from oneDNN: the call that failed, what it was given, and oneDNN's status.
public struct DNNLError: Error, CustomStringConvertible, Equatable {
    /// One line naming the call, its arguments and the reason.
    public let message: String

    public init(_ message: String) { self.message = message }

    public var description: String { "oneDNN: \(message)" }
}

/// The element type of a tensor.
///
/// Training in `.bf16` means activations, weights and their gradients flowing between
/// layers are bfloat16 while every primitive accumulates in f32; biases, their gradients,
/// the weight gradients of convolution and inner product (`diffWeights`), and batch-norm
/// scale, shift and statistics stay f32, as oneDNN requires or allows.
public enum DataType: Sendable, Hashable, CustomStringConvertible {
    /// IEEE binary32.
    case f32
    /// bfloat16: f32's exponent with an 8-bit significand (unit roundoff 2^-8).
    case bf16

    /// Bytes per element.
    public var byteCount: Int {
        switch self {
        case .f32: return 4
        case .bf16: return 2
        }
    }

    public var description: String {
        switch self {
        case .f32: return "f32"
        case .bf16: return "bf16"
        }
    }
}

/// A plain memory layout named by oneDNN's format tag, or `.any` to let a primitive choose.
///
/// Blocked tags are here so tests and callers can name the layouts convolutions pick;
/// normally a blocked descriptor comes from a primitive (`Convolution.forwardSource`, …).
public enum FormatTag: Sendable, Hashable {
    /// Let the primitive choose (only valid when creating a primitive).
    case any
    /// 1-D: a vector (bias, batch-norm scale).
    case x
    /// 2-D: (N, C), e.g. inner-product activations.
    case nc
    /// 4-D activations (N, C, H, W), PyTorch's layout.
    case nchw
    /// 4-D activations, channels last.
    case nhwc
    /// Convolution or inner-product weights (O, I, H, W), PyTorch's layout (also "oi" for 2-D is `.nc`).
    case oihw
    /// Grouped convolution weights (G, O/G, I/G, H, W): PyTorch's (O, I/G, H, W) bytes unchanged.
    case goihw
    /// Activations blocked by 8 channels (oneDNN "aBcd8b", AVX2's layout).
    case nChw8c
    /// Activations blocked by 16 channels (oneDNN "aBcd16b", AVX-512's layout).
    case nChw16c
}

/// The engine, stream and scratchpad that every primitive of this module runs on.
///
/// Not thread-safe: primitives share one scratchpad, so execute them from one thread at
/// a time (the training loop's thread). oneDNN parallelizes inside each primitive.
public final class Context: @unchecked Sendable {
    let engine: OpaquePointer
    let stream: OpaquePointer
    /// One buffer that every primitive uses as its scratchpad, grown when a primitive that
    /// needs more is built (never while executing), so executing allocates nothing.
    private(set) var scratchpad: UnsafeMutableRawPointer?
    /// Bytes in `scratchpad`.
    public private(set) var scratchpadCapacity = 0

    fileprivate init() throws {
        (engine, stream) = try OneDNN.makeCPUEngineAndStream()
    }

    /// Grows the shared scratchpad to at least `bytes` (primitives re-bind it on every execution).
    func reserveScratchpad(_ bytes: Int) {
        guard bytes > scratchpadCapacity else { return }
        scratchpad?.deallocate()
        scratchpad = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        scratchpadCapacity = bytes
    }

    /// Returns once everything executed so far has finished.
    public func wait() throws { try OneDNN.wait(stream) }
}

/// Process-wide oneDNN settings and the shared `Context`.
///
/// (Not named `DNNL`: a type named like its module makes `DNNL.Convolution` unresolvable.)
public enum DNNLRuntime {
    private static let shared = Result { try Context() }

    /// The CPU engine and stream; throws if oneDNN cannot create them.
    public static var context: Context {
        get throws { try shared.get() }
    }

    /// OpenMP threads oneDNN uses for primitives executed from the calling thread
    /// (`OMP_NUM_THREADS` sets the initial value). Setting affects the calling thread.
    public static var threads: Int {
        get { OneDNN.ompThreads }
        set { OneDNN.ompThreads = newValue }
    }

    /// Whether oneDNN runs bf16 primitives on native AVX512_BF16 instructions.
    ///
    /// bf16 primitives also run on plain AVX-512 cores by emulation (correct but slower);
    /// without AVX-512 they are unimplemented and building one throws.
    public static var cpuHasBF16: Bool { OneDNN.hasNativeBF16 }

    /// Whether bf16 primitives run here at all: oneDNN 2.6 implements them on AVX-512 cores
    /// only (by emulation without AVX512_BF16). On AVX2 (e.g. AMD EPYC) building one throws
    /// "unimplemented", and its f32 → bf16 reorder even drops the sign of −0.
    public static var runsBF16: Bool { OneDNN.hasAVX512Core }

    /// Whether f32 Winograd convolutions run here: oneDNN 2.6 implements them on AVX-512 cores only.
    public static var runsWinograd: Bool { OneDNN.hasAVX512Core }

    /// The instruction set oneDNN dispatches to, e.g. "Intel AVX-512 with ... bfloat16 support".
    public static var instructionSet: String { OneDNN.effectiveISA }

    /// oneDNN's version, e.g. "2.6.3".
    public static var version: String { OneDNN.version }
}
