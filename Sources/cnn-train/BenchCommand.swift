import ArgumentParser
import Foundation
import Models
import Optim
import Training

/// `cnn-train bench`: the speed of one training step on synthetic data.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time training steps (forward, loss, backward, SGD update) on random data.",
        discussion: """
        Reports images/s, seconds per step and GFLOP/s, counting a training step as three \
        forward passes (backward costs about two). Build with `swift build -c release` first.
        """
    )

    @Argument(help: "Model to time.")
    var model = "resnet18"

    @Option(name: .long, help: "Input side in pixels (default: the model's D2L side).")
    var side: Int?

    @Option(name: .long, help: "Images per step.")
    var batch = 64

    @Option(name: .long, help: "Timed steps.")
    var steps = 5

    @Option(name: .long, help: "Untimed steps first (buffers are allocated on the first).")
    var warmup = 1

    @Option(name: .long, help: "OpenBLAS threads (default: OpenBLAS's own choice).")
    var threads: Int?

    @Flag(name: .long, help: "Print one JSON line instead of text.")
    var json = false

    func validate() throws {
        guard ModelZoo.names.contains(model) else { throw ValidationError("\(ModelZoo.UnknownModel(name: model))") }
        if batch < 1 { throw ValidationError("--batch must be positive, got \(batch)") }
        if steps < 1 { throw ValidationError("--steps must be positive, got \(steps)") }
        if warmup < 0 { throw ValidationError("--warmup cannot be negative, got \(warmup)") }
        if let threads, threads < 1 { throw ValidationError("--threads must be positive, got \(threads)") }
        if let side, side < 1 { throw ValidationError("--side must be positive, got \(side)") }
    }

    func run() throws {
        if let threads { BLAS.threads = threads }
        let side = self.side ?? ModelZoo.defaultSide(model)!
        let network = try ModelZoo.make(model)
        do { _ = try network.describe(side: side) } catch {
            throw ValidationError("\(model) cannot take side \(side): \(error)")
        }
        network.initialize(.xavier, seed: 0)
        var rng = SeededGenerator(seed: 1)
        let images = Tensor(zeros: Shape(batch, 1, side, side))
        for i in 0..<images.count { images.data[i] = rng.uniform(0, 1) }
        let labels = (0..<batch).map { _ in Int32(rng.next() % UInt64(network.classes)) }
        let loss = SoftmaxCrossEntropy()
        let sgd = SGD(values: network.parameterStorage, gradients: network.gradientStorage, learningRate: 0.01)

        var forward = 0.0, backward = 0.0, update = 0.0
        for step in 0..<(warmup + steps) {
            let t0 = now()
            network.zeroGradients()
            let logits = network.forward(images, mode: .training)
            let result = labels.withUnsafeBufferPointer { loss.evaluate(logits: logits, labels: $0) }
            let t1 = now()
            network.backward(images, result.gradient)
            let t2 = now()
            sgd.step()
            let t3 = now()
            if step >= warmup {
                forward += t1 - t0
                backward += t2 - t1
                update += t3 - t2
            }
        }
        let perStep = (forward + backward + update) / Double(steps)
        let imagesPerSecond = Double(batch) / perStep
        let gflops = 3 * Double(network.flopsPerImage(side: side)) * Double(batch) / perStep / 1e9
        if json {
            print("{\"model\":\"\(model)\",\"side\":\(side),\"batch\":\(batch),\"steps\":\(steps),"
                  + "\"threads\":\(BLAS.threads),\"blas_core\":\"\(BLAS.coreName)\","
                  + "\"seconds_per_step\":\(perStep),\"images_per_sec\":\(imagesPerSecond),\"gflops\":\(gflops),"
                  + "\"forward_sec\":\(forward / Double(steps)),\"backward_sec\":\(backward / Double(steps)),"
                  + "\"update_sec\":\(update / Double(steps))}")
        } else {
            print("\(model) side \(side) batch \(batch): \(steps) steps after \(warmup) warm-up, "
                  + "OpenBLAS \(BLAS.coreName) with \(BLAS.threads) thread(s)")
            print(String(format: "  %.3f s/step (forward %.3f, backward %.3f, update %.3f)",
                         perStep, forward / Double(steps), backward / Double(steps), update / Double(steps)))
            print(String(format: "  %.1f images/s, %.1f GFLOP/s", imagesPerSecond, gflops))
        }
    }
}

