import Tensor

/// Turns bytes of an `ImageSet` into a float batch [B, C, side, side]: scale to [0, 1],
/// resize (bilinear, as PyTorch's `F.interpolate(mode="bilinear", align_corners=False)`),
/// optionally normalize per channel, and optionally augment (random crop with zero padding,
/// horizontal flip), with randomness drawn from a generator the caller seeds per batch.
public struct Preprocessing: Sendable {
    public var side: Int
    /// Per-channel mean and standard deviation subtracted and divided after scaling; nil for none.
    public var normalization: (mean: [Real], std: [Real])?
    public var augment: Bool
    /// Zero padding on each side before the random crop.
    public var cropPadding: Int
    /// Channels of the batch when they differ from the images': a single-channel image is
    /// then copied into each (grayscale as RGB, for networks pretrained on color images).
    public var replicatedChannels: Int?

    public init(side: Int, normalization: (mean: [Real], std: [Real])? = nil, augment: Bool = false, cropPadding: Int = 4,
                replicatedChannels: Int? = nil) {
        self.side = side
        self.normalization = normalization
        self.augment = augment
        self.cropPadding = cropPadding
        self.replicatedChannels = replicatedChannels
    }
}

/// One axis of a bilinear resize: for each output index, the two source indices and weights.
struct ResizeAxis {
    let lower: [Int], upper: [Int]
    let lowerWeight: [Real], upperWeight: [Real]

    /// PyTorch's `area_pixel_compute_source_index` for align_corners=False:
    /// src = (dst + 0.5) · in/out − 0.5, clamped at 0.
    init(from input: Int, to output: Int) {
        let scale = Real(input) / Real(output)
        var lower = [Int](), upper = [Int](), lw = [Real](), uw = [Real]()
        for dst in 0..<output {
            let src = max((Real(dst) + 0.5) * scale - 0.5, 0)
            let i0 = min(Int(src), input - 1)
            let i1 = min(i0 + 1, input - 1)
            let lambda = src - Real(i0)
            lower.append(i0)
            upper.append(i1)
            lw.append(1 - lambda)
            uw.append(lambda)
        }
        self.lower = lower
        self.upper = upper
        lowerWeight = lw
        upperWeight = uw
    }
}

/// Assembles batches from one `ImageSet`; holds the resize tables and a scratch plane.
public final class BatchAssembler: @unchecked Sendable {
    public let set: ImageSet
    public let preprocessing: Preprocessing
    private let resize: BilinearResize
    private let plane: UnsafeMutablePointer<Real>

    public init(set: ImageSet, preprocessing: Preprocessing) {
        self.set = set
        self.preprocessing = preprocessing
        resize = BilinearResize(height: set.height, width: set.width, toHeight: preprocessing.side, toWidth: preprocessing.side)
        plane = .allocate(capacity: preprocessing.side * preprocessing.side)
    }

    deinit { plane.deallocate() }

    public var imageShape: Shape { Shape(channels, preprocessing.side, preprocessing.side) }

    /// Channels of the batch: the images', or as many copies of their one channel as asked.
    public var channels: Int { self.set.channels == 1 ? preprocessing.replicatedChannels ?? 1 : self.set.channels }

    /// Fills `images` ([B, C, side, side], B = indices.count) and `labels` with the examples at
    /// `indices`. Example b is augmented by a generator seeded with mix(seed, firstPosition + b),
    /// so its augmentation depends on its place in the epoch, not on which batch or process
    /// prepares it.
    public func assemble(_ indices: UnsafeBufferPointer<Int>, firstPosition: Int = 0, into images: Tensor,
                         labels: UnsafeMutablePointer<Int32>, seed: UInt64) {
        let side = preprocessing.side, area = side * side
        let c = channels, h = set.height, w = set.width
        precondition(images.shape == Shape(indices.count, c, side, side), "batch tensor \(images.shape) does not fit")
        set.pixels.withUnsafeBufferPointer { pixels in
            for (b, index) in indices.enumerated() {
                labels[b] = set.labels[index]
                var rng = SeededGenerator(seed: mix(seed, UInt64(firstPosition + b)))
                let flip = preprocessing.augment && rng.next() & 1 == 1
                let pad = preprocessing.cropPadding
                let dy = preprocessing.augment ? Int(rng.next() % UInt64(2 * pad + 1)) - pad : 0
                let dx = preprocessing.augment ? Int(rng.next() % UInt64(2 * pad + 1)) - pad : 0
                for channel in 0..<c {
                    let source = pixels.baseAddress! + index * set.imageSize + (set.channels == 1 ? 0 : channel) * h * w
                    resize.apply(source, into: plane)
                    if let n = preprocessing.normalization {
                        let mean = n.mean[channel], std = n.std[channel]
                        for i in 0..<area { plane[i] = (plane[i] - mean) / std }
                    }
                    let out = images.data + (b * c + channel) * area
                    // Output pixel (y, x) reads the resized plane at (y + dy, x + dx), mirrored when
                    // flipped; outside the plane is the zero padding.
                    for y in 0..<side {
                        let sy = y + dy
                        for x in 0..<side {
                            let sx = (flip ? side - 1 - x : x) + dx
                            out[y * side + x] = (sy >= 0 && sy < side && sx >= 0 && sx < side) ? plane[sy * side + sx] : 0
                        }
                    }
                }
            }
        }
    }
}

/// Bytes of one channel to values in [0, 1] at another size: scaled first (as `ToTensor`),
/// then interpolated as PyTorch's bilinear `F.interpolate(align_corners=False)`, in its order
/// of operations.
public struct BilinearResize: Sendable {
    public let height: Int, width: Int, outHeight: Int, outWidth: Int
    private let rows: ResizeAxis, columns: ResizeAxis

    public init(height: Int, width: Int, toHeight outHeight: Int, toWidth outWidth: Int) {
        self.height = height
        self.width = width
        self.outHeight = outHeight
        self.outWidth = outWidth
        rows = ResizeAxis(from: height, to: outHeight)
        columns = ResizeAxis(from: width, to: outWidth)
    }

    // source: (height, width) bytes -> out: (outHeight, outWidth)
    public func apply(_ source: UnsafePointer<UInt8>, into out: UnsafeMutablePointer<Real>) {
        @inline(__always) func value(_ p: UInt8) -> Real { Real(p) / 255 }
        if height == outHeight && width == outWidth {
            for i in 0..<(height * width) { out[i] = value(source[i]) }
            return
        }
        for y in 0..<outHeight {
            let r0 = source + rows.lower[y] * width, r1 = source + rows.upper[y] * width
            let wy0 = rows.lowerWeight[y], wy1 = rows.upperWeight[y]
            for x in 0..<outWidth {
                let c0 = columns.lower[x], c1 = columns.upper[x]
                let wx0 = columns.lowerWeight[x], wx1 = columns.upperWeight[x]
                out[y * outWidth + x] = wy0 * (wx0 * value(r0[c0]) + wx1 * value(r0[c1]))
                    + wy1 * (wx0 * value(r1[c0]) + wx1 * value(r1[c1]))
            }
        }
    }

    public func apply(_ bytes: [UInt8]) -> [Real] {
        precondition(bytes.count == height * width, "\(bytes.count) bytes for \(height)×\(width)")
        var out = [Real](repeating: 0, count: outHeight * outWidth)
        bytes.withUnsafeBufferPointer { apply($0.baseAddress!, into: &out) }
        return out
    }
}

/// Combines seeds and counters into one seed (per epoch, per example).
public func mix(_ values: UInt64...) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for v in values {
        h ^= v &+ 0x9E37_79B9_7F4A_7C15 &+ (h << 6) &+ (h >> 2)
        h = h &* 0x100_0000_01B3
    }
    return h
}
