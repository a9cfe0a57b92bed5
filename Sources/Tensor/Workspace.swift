import Foundation

/// Memory for tensors that live only while a backward pass or one call needs them: input
/// gradients (read by the layer before, then dead) and a layer's scratch (im2col's columns,
/// oneDNN's blocked copies). Kept per layer, they held one activation-sized buffer per
/// layer for the whole run, as much again as the activations backward needs.
///
/// A tensor of the workspace is free again as soon as no `Tensor` refers to its memory.
/// Hold the `Tensor`, not only its `data` pointer, across any call that may take from the
/// workspace, or the memory may be handed out again underneath the pointer.
///
/// A training step takes the same tensors in the same order every time, so the workspace
/// plans for it. Between `rewind` (a pass starts) and `settle` (it ends) it records each
/// request's size and when its memory was seen free again. A pass that did not follow the
/// plan is planned anew at `settle`, knowing every lifetime: largest requests first, each
/// into the smallest slot that is free for its whole life (VGG-11's 103 and 51 MB
/// gradients go into its two 206 MB slots between their uses). The next pass replays the
/// plan: the n-th request takes the slot planned for it, checked free, so a warm step
/// allocates nothing. A request the plan has no free slot for takes the smallest free slot
/// up to eight times its size, else memory of its own that is given back as soon as it is
/// free, so that the first pass needs no more than the plan will.
///
/// Sizes come in classes eight to a doubling (a slot is at most 9% larger than asked).
public enum Workspace {
    private struct Slot {
        let sizeClass: Int
        var storage: Storage
        /// The request that took it last and was not yet seen to drop it.
        var holder: Int?
    }

    /// The n-th request since the rewind: its class, and the request at which its memory
    /// was first seen free again (`.max` while held).
    private struct Request {
        var sizeClass: Int
        var end: Int
    }

    nonisolated(unsafe) private static var slots: [Slot] = []
    /// Memory of requests that no slot served, as `Slot`s outside the plan.
    nonisolated(unsafe) private static var unplanned: [Slot] = []
    /// The slot planned for each request of a pass. Only `settle` writes it: a pass that
    /// ends without settling (evaluation between training steps) leaves the plan as it was.
    nonisolated(unsafe) private static var tape: [Int] = []
    nonisolated(unsafe) private static var requests: [Request] = []
    nonisolated(unsafe) private static var cursor = 0
    /// Every request since the rewind took the slot the tape gave it.
    nonisolated(unsafe) private static var followedTape = true
    private static let noSlot = -1
    /// `holder` of memory taken before the rewind.
    private static let earlierPass = -1
    /// Without a planned slot, a request takes a free slot up to this many classes above its own.
    static let largerClassesServed = 24
    /// Requests recorded per pass; a program that never rewinds stops recording there.
    private static let tapeLimit = 1 << 16

    /// A tensor of `shape` whose contents are left over from earlier use: the caller
    /// overwrites every element it reads.
    public static func tensor(_ shape: Shape, layout: ActivationLayout = .nchw) -> Tensor {
        Tensor(shape: shape, leadingElementsOf: take(sizeClass(of: shape.count))).laidOut(layout)
    }

    /// A pass starts: the requests from here on replay the last planned pass.
    public static func rewind() {
        noteReleases()
        for i in slots.indices where slots[i].holder != nil { slots[i].holder = earlierPass }
        for i in unplanned.indices { unplanned[i].holder = earlierPass }
        cursor = 0
        followedTape = true
    }

    /// A pass ends: if it did not follow the plan, its requests are planned anew and the
    /// planned slots allocated now, so that the next pass allocates nothing. Not while a
    /// tensor of the workspace is still held: its memory cannot move.
    public static func settle() {
        noteReleases()
        guard !followedTape, cursor <= tapeLimit, unplanned.isEmpty, slots.allSatisfy({ $0.holder == nil }) else { return }
        let (classes, assignment) = plan(requests[..<cursor])
        slots = []  // the old slots' memory goes before the planned slots' is allocated
        slots = classes.map { Slot(sizeClass: $0, storage: Storage(count: capacity(of: $0)), holder: nil) }
        tape = assignment
        requests.removeSubrange(cursor...)
        followedTape = true
    }

    /// Bytes held by the planned slots, taken or free, and by unplanned tensors still held.
    public static var byteCount: Int {
        (slots + unplanned).reduce(0) { $0 + $1.storage.count * MemoryLayout<Real>.size }
    }

    /// Gives back the memory of the slots no tensor refers to and forgets the plan (tests
    /// that check what a run holds).
    public static func releaseFreeSlots() {
        noteReleases()
        slots = slots.indices.compactMap { isFree($0) ? nil : slots[$0] }
        for i in slots.indices { slots[i].holder = earlierPass }
        tape = []
        requests = []
        cursor = 0
        followedTape = true
    }

    private static func take(_ sizeClass: Int) -> Storage {
        defer { cursor += 1 }
        noteReleases()
        let planned = cursor < tape.count ? tape[cursor] : noSlot
        var slot: Int?
        if slots.indices.contains(planned), slots[planned].sizeClass >= sizeClass, isFree(planned) {
            slot = planned
        } else {
            followedTape = false
            slot = smallestFreeSlot(serving: sizeClass)
        }
        if cursor < requests.count {
            requests[cursor] = Request(sizeClass: sizeClass, end: .max)
        } else if cursor < tapeLimit {
            requests.append(Request(sizeClass: sizeClass, end: .max))
        }
        if let slot {
            slots[slot].holder = cursor
            return slots[slot].storage
        }
        let own = Slot(sizeClass: sizeClass, storage: Storage(count: capacity(of: sizeClass)), holder: cursor)
        unplanned.append(own)
        return own.storage
    }

    /// Ends the lifetime of each request whose memory no tensor refers to any more, and
    /// gives back unplanned memory.
    private static func noteReleases() {
        func end(_ holder: Int?) {
            if let holder, holder != earlierPass, holder < requests.count { requests[holder].end = cursor }
        }
        for i in slots.indices where slots[i].holder != nil && isFree(i) {
            end(slots[i].holder)
            slots[i].holder = nil
        }
        for i in unplanned.indices.reversed() where isKnownUniquelyReferenced(&unplanned[i].storage) {
            end(unplanned[i].holder)
            unplanned.remove(at: i)
        }
    }

    private static func isFree(_ i: Int) -> Bool { isKnownUniquelyReferenced(&slots[i].storage) }

    private static func smallestFreeSlot(serving sizeClass: Int) -> Int? {
        var best: Int?
        for i in slots.indices where (sizeClass...(sizeClass + largerClassesServed)).contains(slots[i].sizeClass) && isFree(i) {
            if best == nil || slots[i].sizeClass < slots[best!].sizeClass { best = i }
        }
        return best
    }

    /// Slot classes for `requests` and the slot of each: largest first, each into the
    /// smallest slot of its class or larger whose other requests' lives do not overlap its own.
    private static func plan(_ requests: ArraySlice<Request>) -> (classes: [Int], assignment: [Int]) {
        var classes: [Int] = [], lives: [[Range<Int>]] = [], assignment = [Int](repeating: noSlot, count: requests.count)
        for r in requests.indices.sorted(by: { (requests[$0].sizeClass, -$0) > (requests[$1].sizeClass, -$1) }) {
            let life = r..<max(r + 1, requests[r].end)
            var best: Int?
            for s in classes.indices where classes[s] >= requests[r].sizeClass && !lives[s].contains(where: { $0.overlaps(life) }) {
                if best == nil || classes[s] < classes[best!] { best = s }
            }
            if best == nil {
                classes.append(requests[r].sizeClass)
                lives.append([])
                best = classes.count - 1
            }
            lives[best!].append(life)
            assignment[r - requests.startIndex] = best!
        }
        return (classes, assignment)
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
