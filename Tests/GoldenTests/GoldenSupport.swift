import Foundation
import HDF5
import NN
import XCTest

/// The golden files copied from shared/golden (see its README for their layout).
enum Golden {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static func open(_ name: String) throws -> HDF5File {
        try HDF5File(reading: fixtures.appendingPathComponent(name).path)
    }
}

extension HDF5Group {
    /// A dataset as a tensor, in the layout it is stored in.
    func tensor(_ name: String) throws -> Tensor {
        let d = try dataset(name)
        return Tensor(shape: Shape(d.shape.isEmpty ? [1] : d.shape), values: try d.readReals())
    }

    func doubles(_ name: String) throws -> [Double] { try dataset(name).readDoubles() }
}

/// Tensor-level relative error: the largest elementwise difference over the largest
/// expected magnitude (so an element that is near zero is judged at the tensor's scale).
func relativeError<T: BinaryFloatingPoint>(_ actual: [T], _ expected: [Double]) -> Double {
    precondition(actual.count == expected.count, "\(actual.count) values against \(expected.count)")
    var diff = 0.0, scale = 0.0
    for (a, e) in zip(actual, expected) {
        diff = max(diff, abs(Double(a) - e))
        scale = max(scale, abs(e))
    }
    return scale == 0 ? diff : diff / scale
}

/// Asserts the tensor-level relative error is within `tolerance`, and returns it.
@discardableResult
func assertClose(_ actual: Tensor, _ expected: [Double], within tolerance: Double, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) -> Double {
    let error = relativeError(actual.array, expected)
    XCTAssertLessThanOrEqual(error, tolerance, "\(what): relative error \(error)", file: file, line: line)
    return error
}

/// Whether tensors are float64 in this build (see Sources/Tensor/Real.swift).
let isFloat64Build = MemoryLayout<Real>.size == 8
