import NN
import XCTest

/// What each dropout granularity drops, and that evaluation passes the input through.
final class DropoutTests: XCTestCase {
    /// Per unit (element, feature map, example), the output is either all zero or the input
    /// scaled by 1/(1−p), and about p of the units are dropped.
    func testEachGranularityDropsWholeUnits() {
        let shape = Shape(64, 4, 3, 5), p: Real = 0.25
        let input = Tensor(shape: shape, values: (0..<shape.count).map { Real($0 % 17) + 1 })
        for (granularity, unit) in [(Dropout.Granularity.element, 1), (.channel, 15), (.example, 60)] {
            let dropout = Dropout(p, granularity: granularity, seed: 5)
            let y = dropout.forward(input, mode: .training)
            var dropped = 0
            for first in stride(from: 0, to: shape.count, by: unit) {
                let kept = (first..<(first + unit)).map { y.data[$0] == input.data[$0] * (1 / (1 - p)) }
                let zero = (first..<(first + unit)).map { y.data[$0] == 0 }
                XCTAssertTrue(kept.allSatisfy { $0 } || zero.allSatisfy { $0 }, "\(granularity): unit at \(first) is mixed")
                if zero.allSatisfy({ $0 }) { dropped += 1 }
            }
            let units = shape.count / unit, rate = Double(dropped) / Double(units)
            // Binomial: within 4 standard deviations of p.
            XCTAssertEqual(rate, Double(p), accuracy: 4 * (Double(p) * (1 - Double(p)) / Double(units)).squareRoot(), "\(granularity)")
            XCTAssertEqual(dropout.forward(input, mode: .evaluation).array, input.array, "\(granularity): evaluation passes through")
        }
    }

    func testTheSameSeedDropsTheSameUnits() {
        let input = Tensor(shape: Shape(8, 2, 2, 2), values: (0..<64).map { Real($0) + 1 })
        let a = Dropout(0.5, granularity: .example, seed: 9).forward(input, mode: .training).array
        let b = Dropout(0.5, granularity: .example, seed: 9).forward(input, mode: .training).array
        let c = Dropout(0.5, granularity: .example, seed: 10).forward(input, mode: .training).array
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
    }
}
