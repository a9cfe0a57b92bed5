import Tensor
import XCTest

/// The workspace hands out memory that no tensor refers to, and only that.
final class WorkspaceTests: XCTestCase {
    override func setUp() { Workspace.releaseFreeSlots() }

    func testAHeldTensorIsNotHandedOutAgain() {
        let a = Workspace.tensor(Shape(4, 250))
        let b = Workspace.tensor(Shape(4, 250))
        XCTAssertNotEqual(a.data, b.data, "two tensors held at once share no memory")
        XCTAssertEqual(a.count, 1000)
        let reshaped = a.reshaped(Shape(1000))
        let c = Workspace.tensor(Shape(1000))
        XCTAssertTrue(c.data != a.data && c.data != b.data, "a view of a held tensor holds its memory too")
        withExtendedLifetime((a, b, reshaped, c)) {}
    }

    /// One pass: two small tensors held together and dropped, then two large ones.
    private func smallThenLargePass() -> (small: [UnsafeMutablePointer<Real>], large: [UnsafeMutablePointer<Real>]) {
        Workspace.rewind()
        var small = [Workspace.tensor(Shape(1000)), Workspace.tensor(Shape(1000))]
        let smallMemory = small.map(\.data)
        small = []
        let large = [Workspace.tensor(Shape(8000)), Workspace.tensor(Shape(8000))]
        let largeMemory = large.map(\.data)
        withExtendedLifetime(large) {}
        Workspace.settle()
        return (smallMemory, largeMemory)
    }

    /// Planned at the end of the first pass, the small tensors live in the large ones' slots
    /// between their uses, and the next pass replays the plan on the same memory.
    func testAPlannedPassHoldsOnlyItsLargestOverlapAndReplays() {
        let bytesPerLarge = withExtendedLifetime(Workspace.tensor(Shape(8000))) { Workspace.byteCount }
        _ = smallThenLargePass()
        XCTAssertEqual(Workspace.byteCount, 2 * bytesPerLarge, "two slots of the large size, none of the small")
        let first = smallThenLargePass()
        let second = smallThenLargePass()
        XCTAssertEqual(Workspace.byteCount, 2 * bytesPerLarge, "replaying allocates no slot")
        XCTAssertEqual(Set(first.small + first.large).count, 2, "the small tensors use the large ones' slots")
        XCTAssertEqual(first.small, second.small)
        XCTAssertEqual(first.large, second.large)
    }

    /// A pass that departs from the plan (it keeps the small tensors while it takes the large
    /// ones) gets other memory, never memory a tensor still holds.
    func testADepartingPassNeverSharesHeldMemory() {
        _ = smallThenLargePass()
        Workspace.rewind()
        let held = [Workspace.tensor(Shape(1000)), Workspace.tensor(Shape(1000)), Workspace.tensor(Shape(8000)),
                    Workspace.tensor(Shape(8000))]
        XCTAssertEqual(Set(held.map(\.data)).count, 4, "four tensors held at once share no memory")
        Workspace.settle()
    }

    /// A slot holds its tensors and at most 2^(1/8) − 1 ≈ 9% more, plus the 16 elements of
    /// rounding to 64 bytes.
    func testSlotsAreAtMostNinePercentLarger() {
        var rng = SeededGenerator(seed: 3)
        for count in [1, 2, 15, 16, 17, 1000, 1024, 1025, 65_537] + (0..<200).map({ _ in Int(rng.uniform(1, 5_000_000)) }) {
            Workspace.releaseFreeSlots()
            let before = Workspace.byteCount
            let t = Workspace.tensor(Shape(count))
            let capacity = (Workspace.byteCount - before) / MemoryLayout<Real>.size
            XCTAssertGreaterThanOrEqual(capacity, count)
            XCTAssertLessThanOrEqual(Double(capacity), Double(count) * pow(2, 1.0 / 8) + 16, "\(count) elements")
            withExtendedLifetime(t) {}
        }
    }
}
