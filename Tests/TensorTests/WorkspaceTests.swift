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

    func testDroppedMemoryIsTakenAgainWithoutGrowing() {
        var first: Tensor? = Workspace.tensor(Shape(1000))
        let memory = first!.data, held = Workspace.byteCount
        first = nil
        // 1020 elements fall in the class of 1000 (capacity 1024).
        let second = Workspace.tensor(Shape(2, 510))
        XCTAssertEqual(second.data, memory, "the dropped tensor's memory is free again")
        XCTAssertEqual(Workspace.byteCount, held, "no new slot")
        XCTAssertNil(first)
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
