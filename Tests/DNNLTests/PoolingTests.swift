import DNNL
import XCTest

/// Max and average pooling, forward and backward, against loops in Double.
///
/// Inputs are distinct multiples of 1/64 within every window (exact in bf16), so max
/// pooling has no ties and its forward is exact. Averages sum K = kh·kw terms and divide:
/// (K + 2)·2⁻²⁴·Σ|terms|, and bf16 outputs add 2⁻⁸·|value|; a gradient element gathers at
/// most K window contributions: (K + 1)·u·Σ|terms| with u = 2⁻²⁴, or 2⁻⁸ for bf16, which
/// oneDNN accumulates in bf16.
final class PoolingTests: DNNLTestCase {
    private func check(_ g: PoolingGeometry, dims: [Int], _ dataType: DataType, _ format: FormatTag) throws {
        let what = "\(g) \(dataType) \(format) \(dims)"
        let (n, c, h, w) = (dims[0], dims[1], dims[2], dims[3])
        let x = (0..<dims.reduce(1, *)).map { i -> Float in
            let (p, ch) = (i % (h * w), (i / (h * w)) % c)
            return Float(((p * 37 + ch * 11 + i / (c * h * w) * 5) % 256) - 128) / 64
        }
        var rng = SplitMix64(seed: 5)
        let out = g.destinationDims(source: dims)
        let dy = representable(rng.values(out.reduce(1, *)), dataType)
        let layout = try MemoryDescriptor(dims: dims, dataType: dataType, format: format)
        let pooling = try Pooling(g, source: layout)
        XCTAssertEqual(pooling.destination.dims, out)
        let source = try upload(x, to: layout)
        let destination = Buffer(pooling.destination)
        let workspace = Buffer(pooling.workspace)
        try pooling.forward(source: source.pointer, destination: destination.pointer, workspace: workspace.pointer)
        let diffDestination = try upload(dy, to: pooling.destination)
        let diffSource = Buffer(layout)
        try pooling.backward(diffDestination: diffDestination.pointer, workspace: workspace.pointer, diffSource: diffSource.pointer)

        var y = [Expected](), dx = [Double](repeating: 0, count: x.count), dxAbs = dx
        let k = g.kernelHeight * g.kernelWidth
        for i in 0..<n { for ch in 0..<c { for oy in 0..<out[2] { for ox in 0..<out[3] {
            var inside: [Int] = []
            for ky in 0..<g.kernelHeight { for kx in 0..<g.kernelWidth {
                let (iy, ix) = (oy * g.strideHeight - g.paddingTop + ky, ox * g.strideWidth - g.paddingLeft + kx)
                if iy >= 0, iy < h, ix >= 0, ix < w { inside.append(((i * c + ch) * h + iy) * w + ix) }
            } }
            let gradient = Double(dy[((i * c + ch) * out[2] + oy) * out[3] + ox])
            switch g.kind {
            case .max:
                let arg = inside.max { x[$0] < x[$1] }!
                y.append(Expected(value: Double(x[arg]), tolerance: 0))
                dx[arg] += gradient
                dxAbs[arg] += abs(gradient)
            case .averageIncludingPadding, .averageExcludingPadding:
                let count = Double(g.kind == .averageIncludingPadding ? k : inside.count)
                let sum = inside.reduce(0.0) { $0 + Double(x[$1]) }, abs = inside.reduce(0.0) { $0 + Swift.abs(Double(x[$1])) }
                y.append(accumulated(sum / count, absoluteSum: abs / count, count: k + 1, storedAs: dataType))
                for e in inside {
                    dx[e] += gradient / count
                    dxAbs[e] += Swift.abs(gradient / count)
                }
            }
        } } } }
        assertClose(try download(destination), y, "forward \(what)")
        // oneDNN 2.6 accumulates a bf16 gradient in bf16 where windows overlap (measured:
        // errors of 2⁻⁹ on sums of two terms), so each addition may round at 2⁻⁸.
        let gradientRoundoff = dataType == .bf16 ? bf16Roundoff : f32Roundoff
        assertClose(try download(diffSource), zip(dx, dxAbs).map {
            Expected(value: $0, tolerance: Double(k + 1) * gradientRoundoff * $1)
        },
                    "backward \(what)")
    }

    func testPoolingMatchesTheLoops() throws {
        let windows = [
            PoolingGeometry(kind: .max, kernel: 3, stride: 2, padding: 1),   // ResNet's stem
            PoolingGeometry(kind: .max, kernel: 2, stride: 2),
            PoolingGeometry(kind: .averageIncludingPadding, kernel: 3, stride: 1, padding: 1),
            PoolingGeometry(kind: .averageExcludingPadding, kernel: 3, stride: 1, padding: 1),
            // Rectangular, with ceil mode's extra bottom/right padding.
            PoolingGeometry(kind: .averageExcludingPadding, kernelHeight: 2, kernelWidth: 3, strideHeight: 2, strideWidth: 2,
                            paddingBottom: 1, paddingRight: 1),
        ]
        for g in windows {
            try check(g, dims: [2, 3, 7, 7], .f32, .nchw)
            for dataType in dataTypes { try check(g, dims: [2, 16, 7, 6], dataType, .nChw16c) }
        }
    }

    func testMaxPoolingWithoutWorkspaceThrows() throws {
        let pooling = try Pooling(PoolingGeometry(kind: .max, kernel: 2, stride: 2), source: MemoryDescriptor.activations(1, 1, 4, 4, .f32))
        let buffer = Buffer(pooling.source)
        XCTAssertThrowsError(try pooling.forward(source: buffer.pointer, destination: buffer.pointer)) {
            XCTAssertTrue("\($0)".contains("workspace"), "\($0)")
        }
    }
}
