import ArgumentParser
import Distributed
import Foundation
import Models
import Optim
import Training

/// `cnn-train bench`: the speed of training steps on synthetic data, on one process or
/// across the ranks of an mpirun job.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time training steps (forward, loss, backward, gradient all-reduce, SGD update) on random data.",
        discussion: """
        Reports images/s, seconds per step and GFLOP/s, counting a training step as three forward \
        passes (backward costs about two). Under mpirun the global batch is split across the ranks and \
        the report adds the bytes all-reduced per step, the time spent waiting for communication, and \
        the overlap: the share of a blocking all-reduce's time that the bucketed all-reduce hid behind \
        backward. Build with `swift build -c release` first.
        """
    )

    @Argument(help: "Model to time.")
    var model = "resnet18"

    @Option(name: .long, help: "Input side in pixels (default: the model's D2L side).")
    var side: Int?

    @Option(name: .long, help: "Images per step (the global batch, split across ranks).")
    var batch = 64

    @Option(name: .long, help: "Timed steps (at least; see --min-seconds).")
    var steps = 5

    @Option(name: .long, help: "Keep timing steps past --steps until they add up to this many seconds, so that short steps are timed over many.")
    var minSeconds = 1.0

    @Option(name: .long, help: "Untimed steps first (buffers are allocated on the first); when at least one, warm-up goes on for half a second.")
    var warmup = 1

    @Option(name: .long, help: "Gradient bucket size in MiB.")
    var bucketMb = 4.0

    @Option(name: .long, help: ArgumentHelp(
        "Precision of the gradients between ranks: full (the build's), bf16 or fp16 (half the bytes; each sum of two ranks' values is added in float32 and rounded back).",
        valueName: "full|bf16|fp16"))
    var gradDtype = GradientTransport.full

    @OptionGroup var compute: ComputeOptions

    @Flag(name: .long, help: "Print one JSON line instead of text.")
    var json = false

    func validate() throws {
        _ = try ModelZoo.validated(model)
        if batch < 1 { throw ValidationError("--batch must be positive, got \(batch)") }
        if steps < 1 { throw ValidationError("--steps must be positive, got \(steps)") }
        if warmup < 0 { throw ValidationError("--warmup cannot be negative, got \(warmup)") }
        if !(minSeconds >= 0) { throw ValidationError("--min-seconds cannot be negative, got \(minSeconds)") }
        if let side, side < 1 { throw ValidationError("--side must be positive, got \(side)") }
        if !(bucketMb > 0) { throw ValidationError("--bucket-mb must be positive, got \(bucketMb)") }
        if !GradientTransport.isAvailable(gradDtype) { throw ValidationError("--grad-dtype \(gradDtype.rawValue) needs the float32 build") }
    }

    func run() throws {
        let job = Job(compute)
        try job.run { try measure(job) }
    }

    private func measure(_ job: Job) throws {
        let communicator = job.communicator
        let side = try self.side ?? ModelZoo.spec(model).side
        let network = try ModelZoo.make(model)
        try job.collectively {
            guard batch >= communicator.size else { throw ValidationError("--batch \(batch) is smaller than the \(communicator.size) ranks") }
            do { _ = try network.describe(side: side) } catch { throw ValidationError("\(model) cannot take side \(side): \(error)") }
        }
        network.initialize(.xavier, seed: 0)
        let local = shard(0..<batch, rank: communicator.rank, of: communicator.size).count
        var rng = SeededGenerator(seed: 1 &+ UInt64(communicator.rank))
        let images = Tensor(zeros: Shape(local, 1, side, side))
        for i in 0..<images.count { images.data[i] = rng.uniform(0, 1) }
        let labels = (0..<local).map { _ in Int32(rng.next() % UInt64(network.classes)) }
        let loss = SoftmaxCrossEntropy()
        let sgd = SGD(values: network.parameterStorage, gradients: network.gradientStorage, learningRate: 0.01)
        let gradients = GradientSynchronizer(network: network, communicator: communicator, bucketBytes: max(1, Int(bucketMb * 1_048_576)),
                                             transport: gradDtype)
        gradients.attach()

        var compute = 0.0, waiting = 0.0, update = 0.0, waitingFirst = 0.0, waitingLast = 0.0
        /// One training step; its times are added to the totals when `timed`. Returns its length.
        func step(timed: Bool) -> Double {
            communicator.barrier()
            let t0 = now()
            network.zeroGradients()
            gradients.beginStep()
            let logits = network.forward(images, mode: .training)
            let result = labels.withUnsafeBufferPointer { loss.evaluate(logits: logits, labels: $0, normalizer: batch) }
            network.backward(images, result.gradient)
            let t1 = now()
            gradients.finishStep()
            let t2 = now()
            sgd.step()
            let t3 = now()
            if timed {
                compute += t1 - t0
                waiting += t2 - t1
                update += t3 - t2
                waitingFirst += gradients.lastWait.firstBucket
                waitingLast += gradients.lastWait.lastBucket
            }
            return t3 - t0
        }
        /// Steps still needed for `elapsed` seconds of them to reach `target`, at `perStep`
        /// seconds each: the largest count any rank asks for, so that all run the same steps.
        func stepsToReach(_ target: Double, elapsed: Double, perStep: Double) -> Int {
            let own = perStep > 0 ? Int64(max(0, ((target - elapsed) / perStep).rounded(.up))) : 0
            var negated = [-min(own, 1_000_000)]
            negated.withUnsafeMutableBufferPointer { communicator.minimum($0) }
            return Int(-negated[0])
        }

        // Warm-up goes on for half a second: the first tenth of a second or so in which a
        // process keeps both cores of these VMs busy ran up to 20 times slower (LeNet-BN's
        // step: 50 ms against 2.7).
        var warmupSteps = warmup
        if warmup > 0 {
            var elapsed = 0.0, last = 0.0
            for _ in 0..<warmup { last = step(timed: false); elapsed += last }
            let extra = stepsToReach(0.5, elapsed: elapsed, perStep: last)
            for _ in 0..<extra { _ = step(timed: false) }
            warmupSteps += extra
        }
        var timedSteps = steps
        for _ in 0..<steps { _ = step(timed: true) }
        let extra = stepsToReach(minSeconds, elapsed: compute + waiting + update, perStep: (compute + waiting + update) / Double(steps))
        for _ in 0..<extra { _ = step(timed: true) }
        timedSteps += extra
        // The same bytes in one blocking all-reduce after backward: what overlap saves against.
        var blocking = 0.0
        if communicator.size > 1 {
            let all = UnsafeMutableBufferPointer(start: network.gradientStorage.base, count: network.parameterCount)
            for _ in 0..<steps {
                communicator.barrier()
                let t = now()
                communicator.sum(all)
                blocking += now() - t
            }
        }
        // Rank 0 reports the slowest rank's times (a step lasts as long as its slowest rank), and
        // the fastest rank's compute: their difference is the skew the others wait for.
        let perRank = [compute, waiting, update, waitingFirst, waitingLast].map { $0 / Double(timedSteps) } + [blocking / Double(steps)] + [peakResidentBytes() / 1e9]
        var extremes = perRank.map { -Int64(($0 * 1e9).rounded()) } + [Int64((perRank[0] * 1e9).rounded())]
        extremes.withUnsafeMutableBufferPointer { communicator.minimum($0) }
        let slowest = extremes.dropLast().map { Double(-$0) / 1e9 }
        let (c, w, u, first, last, b) = (slowest[0], slowest[1], slowest[2], slowest[3], slowest[4], slowest[5])
        let peakMB = slowest[6] * 1e3
        let skew = c - Double(extremes.last!) / 1e9
        guard job.isRoot else { return }
        let perStep = c + w + u
        let imagesPerSecond = Double(batch) / perStep
        let gflops = 3 * Double(network.flopsPerImage(side: side)) * Double(batch) / perStep / 1e9
        let bytes = communicator.size > 1 ? gradients.bytesPerStep : 0
        let overlap = b > 0 ? max(0, min(1, 1 - w / b)) : 0
        // Winograd applies to oneDNN's convolutions only.
        let algorithm = ConvolutionEngine.current == .dnnl ? ConvolutionEngine.algorithm.rawValue : "im2col"
        if json {
            print("{\"model\":\"\(model)\",\"side\":\(side),\"batch\":\(batch),\"ranks\":\(communicator.size),\"steps\":\(timedSteps),"
                  + "\"threads\":\(Parallel.threads),\"engine\":\"\(ConvolutionEngine.current)\",\"conv_algorithm\":\"\(algorithm)\",\"blas_core\":\"\(BLAS.coreName)\",\"seconds_per_step\":\(perStep),"
                  + "\"images_per_sec\":\(imagesPerSecond),\"gflops\":\(gflops),\"compute_sec\":\(c),\"comm_wait_sec\":\(w),"
                  + "\"update_sec\":\(u),\"comm_share\":\(w / perStep),\"bytes_per_step\":\(bytes),"
                  + "\"blocking_allreduce_sec\":\(b),\"overlap\":\(overlap),\"wait_first_bucket_sec\":\(first),"
                  + "\"wait_last_bucket_sec\":\(last),\"compute_skew_sec\":\(skew),\"peak_rss_mb\":\(peakMB)}")
        } else {
            print("\(model) side \(side) global batch \(batch) on \(communicator.size) rank(s): \(timedSteps) steps after \(warmupSteps) warm-up, "
                  + "\(ConvolutionEngine.current) engine (\(algorithm) convolutions), OpenBLAS \(BLAS.coreName), \(Parallel.threads) thread(s) per rank")
            print(String(format: "  %.3f s/step (forward+backward %.3f, waiting for all-reduce %.3f, update %.3f)", perStep, c, w, u))
            print(String(format: "  %.1f images/s, %.1f GFLOP/s, communication %.1f%% of the step; peak resident memory %.0f MB per rank (largest)",
                         imagesPerSecond, gflops, 100 * w / perStep, peakMB))
            if communicator.size > 1 {
                print(String(format: "  %@ bytes all-reduced per step; a blocking all-reduce of them takes %.3f s, overlap hid %.0f%% of it",
                             grouped(bytes), b, 100 * overlap))
                print(String(format: "  after backward: %.3f s waiting for the first bucket, %.3f s for the rest; "
                             + "ranks' compute differs by up to %.3f s (skew)", first, last, skew))
            }
        }
    }
}

/// The process's peak resident memory (getrusage's ru_maxrss, KiB on Linux), in bytes.
func peakResidentBytes() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) * 1024
}
