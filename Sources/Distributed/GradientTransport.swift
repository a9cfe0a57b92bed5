import CMPIShims
import NN

/// The precision gradients travel in between ranks (`--grad-dtype`), as Horovod's compression:
/// the build's own (`full`), or 16-bit floats, halving the bytes of every all-reduce. A 16-bit
/// bucket is rounded to nearest from the float32 gradient, every combine of two ranks' values
/// adds them in float32 and rounds back, and the sum is widened again before averaging.
/// No residual is carried from step to step, so a resumed run stays equal to an uninterrupted one.
///
/// bf16 keeps float32's range with 8 significant bits (relative rounding error ≤ 2⁻⁸ per
/// rounding); fp16 has 11 bits (2⁻¹¹) but underflows below 6·10⁻⁸ and loses bits below
/// 6·10⁻⁵, where small gradients live: bf16 is the safer choice.
public enum GradientTransport: String, CaseIterable, Sendable {
    case full, bf16, fp16

    /// Bytes per gradient element on the wire.
    public var bytesPerElement: Int { self == .full ? MemoryLayout<Real>.size : 2 }

    /// 16-bit transport needs float32 gradients (the float64 build sums them in full).
    public static func isAvailable(_ transport: GradientTransport) -> Bool {
        transport == .full || MemoryLayout<Real>.size == 4
    }

    /// Rounds `values` to this 16-bit format into `halves`.
    func narrow(_ values: UnsafeMutablePointer<Real>, into halves: UnsafeMutablePointer<UInt16>, count: Int) {
        precondition(self != .full && MemoryLayout<Real>.size == 4, "16-bit transport of \(Real.self) gradients")
        values.withMemoryRebound(to: Float.self, capacity: count) { floats in
            self == .bf16 ? cnn_float_to_bf16(floats, halves, count) : cnn_float_to_fp16(floats, halves, count)
        }
    }

    /// Widens `halves` back into `values`.
    func widen(_ halves: UnsafeMutablePointer<UInt16>, into values: UnsafeMutablePointer<Real>, count: Int) {
        precondition(self != .full && MemoryLayout<Real>.size == 4, "16-bit transport of \(Real.self) gradients")
        values.withMemoryRebound(to: Float.self, capacity: count) { floats in
            self == .bf16 ? cnn_bf16_to_float(halves, floats, count) : cnn_fp16_to_float(halves, floats, count)
        }
    }
}
