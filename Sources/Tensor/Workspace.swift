import Foundation

/// Memory for tensors that live only while a backward pass or one call needs them: input
/// gradients (read by the layer before, then dead) and a layer's scratch (im2col's columns).
/// Kept per layer, they held one activation-sized buffer per layer for the whole run, as
/// much again as the activations backward needs.
///
/// A tensor of the workspace is free again as soon as no `Tensor` refers to its memory: a
/// slot is taken when the workspace holds its only reference. Hold the `Tensor`, not only
/// its `data` pointer, across any call that may take from the workspace, or the memory may
/// be handed out again underneath the pointer.
///
/// Slots come in size classes eight to a doubling (each at most 9% larger than the
/// tensors it serves), so that shapes of about the same size share slots. A program that
/// takes and drops the same tensors in the same order needs no new slot after its first
/// run: a warm training step allocates nothing.
public enum Workspace {
    private struct Slot {
        let sizeClass: Int
        var storage: Storage
    }

    nonisolated(unsafe) private static var slots: [Slot] = []

    /// A tensor of `shape` whose contents are left over from earlier use: the caller
    /// overwrites every element it reads.
    public static func tensor(_ shape: Shape) -> Tensor {
        let sizeClass = sizeClass(of: shape.count)
        for i in slots.indices where slots[i].sizeClass == sizeClass && isKnownUniquelyReferenced(&slots[i].storage) {
            return Tensor(shape: shape, leadingElementsOf: slots[i].storage)
        }
        let storage = Storage(count: capacity(of: sizeClass))
        slots.append(Slot(sizeClass: sizeClass, storage: storage))
        return Tensor(shape: shape, leadingElementsOf: storage)
    }

    /// Bytes held by every slot, taken or free.
    public static var byteCount: Int { slots.reduce(0) { $0 + $1.storage.count * MemoryLayout<Real>.size } }

    /// Gives back the memory of the slots no tensor refers to (tests that check what a run holds).
    public static func releaseFreeSlots() {
        slots = slots.indices.compactMap { isKnownUniquelyReferenced(&slots[$0].storage) ? nil : slots[$0] }
    }

    /// The smallest class c with capacity(c) ≥ count.
    static func sizeClass(of count: Int) -> Int {
        guard count > 1 else { return 0 }
        var c = Int((8 * log2(Double(count))).rounded(.up))
        while capacity(of: c) < count { c += 1 }
        return c
    }

    /// ⌈2^(c/8)⌉ elements, rounded up to 64 bytes.
    static func capacity(of sizeClass: Int) -> Int {
        let exact = Int(pow(2, Double(sizeClass) / 8).rounded(.up))
        return (exact + 15) / 16 * 16
    }
}
