// swift-tools-version:6.0
import PackageDescription

// Lower layers never import higher ones:
// C libraries -> Tensor -> NN -> Models / Optim; HDF5 stands beside them for checkpoints and fixtures.
/// `CNN_TRAIN_FLOAT64=1 swift test --scratch-path .build-float64` builds every tensor as
/// float64 (see Sources/Tensor/Real.swift).
let realSettings: [SwiftSetting] = Context.environment["CNN_TRAIN_FLOAT64"] == "1" ? [.define("CNN_FLOAT64")] : []

let package = Package(
    name: "cnn-train",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "cnn-train", targets: ["cnn-train"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // MARK: - C libraries from Debian (pkg-config names as Debian ships them)
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5",
                       providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        // oneDNN (2.x C API) with its GNU OpenMP runtime; Debian ships no pkg-config file for it.
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),
        // What Swift cannot import from those headers: constants that are macros.
        .target(name: "CMPIShims", dependencies: ["CMPI"]),
        .target(name: "CHDF5Shims", dependencies: ["CHDF5"]),
        // Parallel loops on oneDNN's OpenMP team (GNU libgomp, which libdnnl links).
        .target(name: "CParallel", linkerSettings: [.linkedLibrary("gomp")]),
        // Float32 loops Swift leaves scalar (activations on e^x and erf, pooling, depthwise
        // weight gradient, batch norm sums), built for AVX2 + FMA and for the baseline.
        .target(name: "CKernels"),

        // MARK: - Swift modules
        .target(name: "Tensor", dependencies: ["COpenBLAS", "CParallel"], swiftSettings: realSettings),
        .target(name: "NN", dependencies: ["Tensor", "DNNL", "CKernels"], swiftSettings: realSettings),
        .target(name: "Models", dependencies: ["NN"]),
        .target(name: "Optim", dependencies: ["NN"]),
        .target(name: "HDF5", dependencies: ["CHDF5", "CHDF5Shims", "CZlib"]),
        // oneDNN primitives over raw buffers: the convolution engine's foundation, below Tensor's users.
        .target(name: "DNNL", dependencies: ["CDNNL"]),
        .target(name: "Datasets", dependencies: ["Tensor", "HDF5", "CZlib"]),
        .target(name: "Checkpoint", dependencies: ["NN", "HDF5"]),
        .target(name: "Distributed", dependencies: ["NN", "CMPI", "CMPIShims"]),
        .target(name: "Training", dependencies: ["Models", "Optim", "Datasets", "Checkpoint", "Distributed"]),
        .executableTarget(name: "cnn-train", dependencies: [
            "Training", "DNNL", "CMPI", "CZlib",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // MARK: - Tests
        .testTarget(name: "TensorTests", dependencies: ["Tensor"]),
        .testTarget(name: "NNTests", dependencies: ["NN", "CKernels", "DNNL"]),
        .testTarget(name: "HDF5Tests", dependencies: ["HDF5"]),
        .testTarget(name: "DNNLTests", dependencies: ["DNNL", "AllocationCounter"]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "Tensor", "HDF5", "CZlib"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "HDF5"]),
        // Runs the built executable (declared as a dependency so that it is built first).
        .testTarget(name: "CLITests", dependencies: ["cnn-train", "Tensor"]),
        .testTarget(name: "DistributedTests", dependencies: ["cnn-train", "HDF5", "Tensor"]),
        .testTarget(name: "LaunchTests", dependencies: ["cnn-train", "Distributed", "HDF5"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "Optim", "AllocationCounter"]),
        // Replaces malloc in the test executable to count allocations during a training step.
        .target(name: "AllocationCounter", path: "Tests/AllocationCounter", linkerSettings: [.linkedLibrary("gomp")]),
        // Every case of PyTorch's golden files (Fixtures/, copied from shared/golden).
        .testTarget(name: "GoldenTests", dependencies: ["Models", "Optim", "HDF5", "Checkpoint", "DNNL"], exclude: ["Fixtures"]),
    ]
)
