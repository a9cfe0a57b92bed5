import DNNL
import XCTest

/// Unit roundoff of float32 (round to nearest): relative error of one rounding.
let f32Roundoff = 0x1p-24
/// Unit roundoff of bfloat16 (8-bit significand): relative error of rounding to bf16.
let bf16Roundoff = 0x1p-8

/// A small deterministic generator (SplitMix64), so every failure reproduces.
struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [low, high).
    mutating func uniform(_ low: Float, _ high: Float) -> Float {
        low + (high - low) * Float(next() >> 40) / Float(1 << 24)
    }

    mutating func values(_ count: Int, _ low: Float = -1, _ high: Float = 1) -> [Float] {
        (0..<count).map { _ in uniform(low, high) }
    }
}

/// `value` rounded to the nearest bfloat16 (ties to even), as a float: the reference for
/// oneDNN's f32 → bf16 conversion, written from the format's definition.
func roundedToBF16(_ value: Float) -> Float {
    let bits = value.bitPattern
    let roundingBias: UInt32 = 0x7FFF + ((bits >> 16) & 1)
    return Float(bitPattern: (bits &+ roundingBias) & 0xFFFF_0000)
}

/// The values a tensor of `dataType` can hold exactly: bf16 inputs are rounded first so
/// that the reference sees exactly what oneDNN sees.
func representable(_ values: [Float], _ dataType: DataType) -> [Float] {
    dataType == .bf16 ? values.map(roundedToBF16) : values
}

/// Bytes owned by a test, in the layout of `descriptor`, filled with NaN-like 0xFF bytes.
///
/// Every buffer lives until its test ends (`DNNLTestCase.tearDown`): an optimized build
/// may otherwise free a buffer right after its `pointer` was read, while oneDNN uses it.
final class Buffer {
    let descriptor: MemoryDescriptor
    let pointer: UnsafeMutableRawPointer
    nonisolated(unsafe) private static var live: [Buffer] = []

    init(_ descriptor: MemoryDescriptor) {
        self.descriptor = descriptor
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(descriptor.byteCount, 1), alignment: 64)
        pointer.initializeMemory(as: UInt8.self, repeating: 0xFF, count: max(descriptor.byteCount, 1))
        Buffer.live.append(self)
    }

    deinit { pointer.deallocate() }

    /// Frees the buffers of the test that ended.
    static func releaseAll() { live.removeAll() }
}

/// The base of this module's tests: frees the test's buffers when it ends.
class DNNLTestCase: XCTestCase {
    override func tearDown() {
        Buffer.releaseAll()
        super.tearDown()
    }

    /// Skips a bf16-only test on CPUs where oneDNN has no bf16 kernels (no AVX-512).
    func skipUnlessBF16() throws {
        try XCTSkipUnless(DNNLRuntime.runsBF16, "oneDNN \(DNNLRuntime.version) has no bf16 kernels on \(DNNLRuntime.instructionSet)")
    }

    /// The data types this CPU computes in: f32, and bf16 where oneDNN implements it.
    var dataTypes: [DataType] { DNNLRuntime.runsBF16 ? [.f32, .bf16] : [.f32] }
}

/// PyTorch's plain layout for a tensor of `dims` (x, nc, nchw, or goihw for grouped weights).
func plainDescriptor(_ dims: [Int], _ dataType: DataType) throws -> MemoryDescriptor {
    let tag: FormatTag
    switch dims.count {
    case 1: tag = .x
    case 2: tag = .nc
    case 4: tag = .nchw
    case 5: tag = .goihw
    default: throw TestSetupError(message: "no plain layout for \(dims.count) dims")
    }
    return try MemoryDescriptor(dims: dims, dataType: dataType, format: tag)
}

/// A mistake in a test's own setup.
struct TestSetupError: Error {
    let message: String
}

/// A buffer in `descriptor` holding `values` (given in the plain layout of the same dims,
/// as f32), converted by a reorder.
func upload(_ values: [Float], to descriptor: MemoryDescriptor) throws -> Buffer {
    let plain = try plainDescriptor(descriptor.dims, .f32)
    precondition(values.count == descriptor.dims.reduce(1, *), "test bug: \(values.count) values for \(descriptor)")
    let buffer = Buffer(descriptor)
    try values.withUnsafeBytes { bytes in
        try Reorder(from: plain, to: descriptor).execute(from: bytes.baseAddress!, to: buffer.pointer)
    }
    return buffer
}

/// The values of `buffer` in the plain layout of its dims, as f32.
func download(_ buffer: Buffer) throws -> [Float] {
    let plain = try plainDescriptor(buffer.descriptor.dims, .f32)
    var values = [Float](repeating: .nan, count: buffer.descriptor.dims.reduce(1, *))
    try values.withUnsafeMutableBytes { bytes in
        try Reorder(from: buffer.descriptor, to: plain).execute(from: buffer.pointer, to: bytes.baseAddress!)
    }
    return values
}

/// An exact value with the bound of the rounding error a correct computation may make.
struct Expected {
    var value: Double
    var tolerance: Double
}

/// Asserts every `actual[i]` lies within `expected[i].tolerance` of `expected[i].value`,
/// reporting the worst element.
func assertClose(_ actual: [Float], _ expected: [Expected], _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, "\(what): element count", file: file, line: line)
    var worst: (index: Int, ratio: Double)? = nil
    for (i, (a, e)) in zip(actual, expected).enumerated() {
        let error = abs(Double(a) - e.value)
        let ratio = error / max(e.tolerance, .leastNormalMagnitude)
        if !(error <= e.tolerance), ratio > (worst?.ratio ?? 0) || worst == nil { worst = (i, ratio) }
    }
    if let worst {
        let e = expected[worst.index]
        XCTFail("\(what): element \(worst.index) is \(actual[worst.index]), expected \(e.value) ± \(e.tolerance)",
                file: file, line: line)
    }
}

/// A sum of terms accumulated in f32 (any order, fused or not) and then stored in
/// `dataType`: |error| ≤ (count + 1)·u₃₂·Σ|terms| (the classic γₙ bound, +1 for storing
/// an f32 result) plus, for bf16 storage, one rounding: u_bf16·|sum|.
func accumulated(_ sum: Double, absoluteSum: Double, count: Int, storedAs dataType: DataType) -> Expected {
    let accumulation = Double(count + 1) * f32Roundoff * absoluteSum
    let storage = dataType == .bf16 ? bf16Roundoff * (abs(sum) + accumulation) : 0
    return Expected(value: sum, tolerance: accumulation + storage)
}
