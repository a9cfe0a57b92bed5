import NN
import XCTest

/// Pooling against PyTorch's CPU loops written out plainly: each output visits its window
/// row by row, a maximum replaces the current one only when greater (or NaN), so among equal
/// values the first wins and takes the gradient. The layer's loops (in C in the float32
/// build) compare and sum in that same order, so everything must agree bit for bit.
final class Pool2dTests: XCTestCase {
    /// Values from a small set, so that windows hold ties (as after a ReLU), with −∞ and NaN.
    private func input(_ shape: Shape, seed: UInt64) -> Tensor {
        var rng = SeededGenerator(seed: seed)
        let palette: [Real] = [0, 0, 0, 1, 2, -1, 0.5, -.infinity]
        var values = (0..<shape.count).map { _ in palette[Int(rng.next() % UInt64(palette.count))] }
        values[shape.count / 3] = .nan
        return Tensor(shape: shape, values: values)
    }

    private struct Reference {
        var y: [Real], winners: [Int]
    }

    private func reference(_ kind: Pool2d.Kind, _ x: Tensor, k: Int, s: Int, p: Int) -> Reference {
        let (planes, h, w) = (x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
        let outH = (h + 2 * p - k) / s + 1, outW = (w + 2 * p - k) / s + 1
        var y = [Real](), winners = [Int]()
        for plane in 0..<planes {
            for oy in 0..<outH {
                for ox in 0..<outW {
                    let ys = max(oy * s - p, 0), ye = min(oy * s - p + k, h)
                    let xs = max(ox * s - p, 0), xe = min(ox * s - p + k, w)
                    var best = -Real.infinity, at = ys * w + xs, sum: Real = 0
                    for iy in ys..<ye {
                        for ix in xs..<xe {
                            let v = x.data[plane * h * w + iy * w + ix]
                            if v > best || v.isNaN { (best, at) = (v, iy * w + ix) }
                            sum += v
                        }
                    }
                    y.append(kind == .max ? best : sum / Real(k * k))
                    winners.append(plane * h * w + at)
                }
            }
        }
        return Reference(y: y, winners: winners)
    }

    private func same(_ a: [Real], _ b: [Real]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }
    }

    func testPoolingComparesAndSumsInPyTorchsOrder() {
        // Windows clipped on every side, inner windows, overlapping and disjoint ones, and a
        // plane so narrow that no window lies inside it; rows with 8 or more inner outputs
        // (the C loops take those eight at a time) at strides 1, 2 and 3.
        // Planes of at most 16×16 go eight at a time: 21 planes leave five to the other path.
        for (k, s, p, h, w, planes) in [(3, 2, 1, 11, 13, 6), (2, 2, 0, 8, 9, 6), (3, 1, 1, 6, 21, 6), (5, 3, 2, 12, 17, 6),
                                        (3, 1, 1, 3, 2, 6), (3, 3, 0, 9, 20, 6), (2, 1, 0, 5, 5, 6), (3, 2, 1, 7, 48, 6),
                                        (2, 2, 0, 4, 35, 6), (3, 3, 1, 5, 50, 6),
                                        (3, 1, 1, 6, 6, 21), (3, 1, 1, 3, 3, 21), (3, 2, 1, 12, 12, 21), (2, 2, 0, 16, 16, 21),
                                        (3, 1, 1, 5, 16, 21)] {
            for kind in [Pool2d.Kind.max, .average] {
                let x = input(Shape(planes / 3, 3, h, w), seed: UInt64(k * 100 + w + planes))
                let layer = Pool2d(kind, kernel: k, stride: s, padding: p)
                let expected = reference(kind, x, k: k, s: s, p: p)
                let y = layer.forward(x, mode: .training)
                XCTAssertTrue(same(y.array, expected.y), "\(kind) k\(k) s\(s) p\(p) \(h)×\(w): forward")
                guard kind == .max else { continue }
                let dy = Tensor(shape: y.shape, values: (0..<y.count).map { Real($0 % 7) + 1 })
                var dx = [Real](repeating: 0, count: x.count)
                for (o, winner) in expected.winners.enumerated() { dx[winner] += dy.data[o] }
                XCTAssertEqual(layer.backward(x, dy).array, dx, "max k\(k) s\(s) p\(p) \(h)×\(w): the gradient goes to the first maximum")
            }
        }
    }
}
