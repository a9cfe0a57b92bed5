import HDF5
import NN

/// A network's `state_dict` in HDF5: group `/model` with one dataset per key, float32 in
/// PyTorch layout, `num_batches_tracked` int64. The layout of our checkpoints, and what
/// h5py writes from a PyTorch state_dict, so either can start a run. (The float64 test build
/// writes float64, so that it too resumes bit for bit; either build reads either.)
public enum ModelWeights {
    /// Writes the state dict under `/model` of an open file, and names the model in the
    /// root attribute `model`.
    public static func write(_ network: Network, to file: HDF5File) throws {
        let root = file.root
        try root.setAttribute("model", network.name)
        let group = try root.createGroup("model")
        for (key, value) in network.stateDict {
            switch value {
            case let .tensor(t):
                try group.write(key, shape: t.shape.dims, reals: UnsafeBufferPointer(start: t.data, count: t.count))
            case let .counter(get, _):
                try group.write(key, shape: [], int64s: [get()])
            }
        }
    }

    /// Writes a weights file with a checksum (see `FileChecksum`), durably: `path` holds
    /// either its previous contents or the whole new file.
    public static func save(_ network: Network, to path: String) throws {
        let file = try HDF5File(inMemoryNamed: path)
        try write(network, to: file)
        try writeDurably(try file.checksummedImage(), to: path)
    }

    /// The model named by a weights file's root attribute `model`, if any.
    public static func modelName(in path: String) throws -> String? {
        let root = try HDF5File(reading: path).root
        return root.hasAttribute("model") ? try root.stringAttribute("model") : nil
    }

    /// Loads every key of the network from `/model`, as PyTorch's `load_state_dict(strict=True)`:
    /// a missing, unexpected or misshaped entry is an error naming the file and the key, and
    /// nothing is changed unless everything fits. A file whose checksum does not match is
    /// refused; one without a checksum loads, and the returned status says so.
    ///
    /// With `replacingClassifier`, the network's classifier (`Network.classifierKeys`) keeps
    /// its own values, and the file's, of any shape (an ImageNet head of 1000 classes), are
    /// not read: fine-tuning a pretrained network for another number of classes.
    @discardableResult
    public static func load(into network: Network, from path: String, replacingClassifier: Bool = false) throws -> FileChecksum.Status {
        let file: HDF5File
        do { file = try HDF5File(reading: path) } catch let error as HDF5Error where error.isDamage { throw error } catch {
            throw HDF5Error("\(path): not a readable HDF5 file", damage: true)
        }
        let root = file.root
        guard root.isGroup("model") else { throw HDF5Error("\(path): no group /model (expected one dataset per state_dict key)") }
        if root.hasAttribute("model"), let named = try? root.stringAttribute("model"), named != network.name {
            throw HDF5Error("\(path): holds weights of \(named), not \(network.name)")
        }
        let group = try root.group("model")
        let classifier = Set(replacingClassifier ? network.classifierKeys : [])
        let expected = network.stateDict.filter { !classifier.contains($0.key) }
        let present = Set(try group.memberNames()).subtracting(classifier)
        let keys = Set(expected.map(\.key))
        if let missing = expected.first(where: { !present.contains($0.key) }) {
            throw HDF5Error("\(path): /model has no '\(missing.key)' for \(network.name)")
        }
        if let unexpected = present.subtracting(keys).sorted().first {
            throw HDF5Error("\(path): /model/\(unexpected) is not a key of \(network.name)")
        }
        // Read and check everything before writing anything into the network.
        var tensors: [(Tensor, [Real])] = [], counters: [(set: (Int64) -> Void, value: Int64)] = []
        for (key, value) in expected {
            let dataset = try group.dataset(key)
            switch value {
            case let .tensor(t):
                guard dataset.shape == t.shape.dims else {
                    throw HDF5Error("\(path): /model/\(key) has shape \(dataset.shape), expected \(t.shape.dims)"
                                    + mismatchAdvice(key: key, network: network, replacingClassifier: replacingClassifier))
                }
                let values: [Real] = try dataset.readReals()
                if let bad = values.first(where: { !$0.isFinite }) {
                    throw HDF5Error("\(path): /model/\(key) holds a non-finite value (\(bad))")
                }
                tensors.append((t, values))
            case let .counter(_, set):
                guard dataset.count == 1, dataset.elementKind == .integer else {
                    throw HDF5Error("\(path): /model/\(key) should be one integer")
                }
                counters.append((set, try dataset.readInt64s()[0]))
            }
        }
        for (t, values) in tensors { values.withUnsafeBufferPointer { t.data.update(from: $0.baseAddress!, count: t.count) } }
        for (set, value) in counters { set(value) }
        return file.checksum
    }

    /// What to do about a misshaped key: pretrained weights usually differ from the network
    /// in the classifier (other classes) or in the first convolution (3 input channels).
    private static func mismatchAdvice(key: String, network: Network, replacingClassifier: Bool) -> String {
        if !replacingClassifier && network.classifierKeys.contains(key) {
            return " (\(network.classes) classes here; --replace-head starts the classifier afresh)"
        }
        if key == network.parameters.first?.key {
            return " (the first layer takes \(network.inputChannels) input channel(s) here; --channels sets them, 3 for RGB weights)"
        }
        return ""
    }
}
