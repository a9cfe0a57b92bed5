/// Fully connected layer y = x·Wᵀ + b over [N, in] input. Weight [out, in], bias [out].
public final class Linear: Layer, OverwritableOutput {
    public let inFeatures: Int, outFeatures: Int
    public let weight: Parameter
    public let bias: Parameter

    private var output: Tensor?

    public init(_ inFeatures: Int, _ outFeatures: Int) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        weight = Parameter("weight", shape: Shape(outFeatures, inFeatures),
                           role: .weight(fanIn: inFeatures, fanOut: outFeatures))
        bias = Parameter("bias", shape: Shape(outFeatures), role: .bias(fanIn: inFeatures))
    }

    public var summary: String { "Linear(\(inFeatures)→\(outFeatures))" }
    public var parameters: [Parameter] { [weight, bias] }

    public func outputShape(for input: Shape) throws -> Shape {
        guard input.rank == 2, input[1] == inFeatures else {
            throw ShapeError(layer: summary, "expects N×\(inFeatures) input, got \(input)")
        }
        return Shape(input[0], outFeatures)
    }

    public func flops(for input: Shape) -> Int { 2 * input[0] * inFeatures * outFeatures }

    // x: (N, in) -> y: (N, out)
    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let n = input.shape[0]
        let y = Tensor.reuse(&output, shape: Shape(n, outFeatures))
        BLAS.gemm(transB: true, m: n, n: outFeatures, k: inFeatures, a: input.data, lda: inFeatures,
                  b: weight.value.data, ldb: inFeatures, c: y.data, ldc: outFeatures)
        let b = bias.value.data
        for i in 0..<n {
            let row = y.data + i * outFeatures
            for j in 0..<outFeatures { row[j] += b[j] }
        }
        return y
    }

    public func backward(_ input: Tensor, _ gradOutput: Tensor) -> Tensor {
        let n = input.shape[0]
        let dy = gradOutput.data
        // dW += dYᵀ · X; db += Σ_rows dY; dX = dY · W
        BLAS.gemm(transA: true, m: outFeatures, n: inFeatures, k: n, a: dy, lda: outFeatures,
                  b: input.data, ldb: inFeatures, beta: 1, c: weight.grad.data, ldc: inFeatures)
        let db = bias.grad.data
        for i in 0..<n {
            let row = dy + i * outFeatures
            for j in 0..<outFeatures { db[j] += row[j] }
        }
        let dx = Workspace.tensor(input.shape)
        BLAS.gemm(m: n, n: inFeatures, k: outFeatures, a: dy, lda: outFeatures,
                  b: weight.value.data, ldb: inFeatures, c: dx.data, ldc: inFeatures)
        return dx
    }
}
