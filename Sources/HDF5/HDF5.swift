import CHDF5
import CHDF5Shims
import Foundation

/// A failed HDF5 operation, naming the file and object involved.
public struct HDF5Error: Error, CustomStringConvertible {
    public let description: String
    /// Whether the file's bytes are not the ones written (a checksum mismatch, a truncated or
    /// unparseable file), as opposed to an intact file that is not what was asked for.
    public let isDamage: Bool
    public init(_ description: String, damage: Bool = false) {
        self.description = description
        isDamage = damage
    }
}

/// An HDF5 file opened for reading or created for writing. Groups, datasets and
/// attributes are reached through `root`.
public final class HDF5File {
    public let path: String
    let id: hid_t
    /// Whether the file's checksum was verified when it was opened (see `FileChecksum`).
    public let checksum: FileChecksum.Status
    /// Set for a checksummed file opened for updating: its checksum is rewritten on close.
    private let rechecksumsOnClose: Bool

    /// Opens an existing file read-only, after checking its checksum if it has one: a file
    /// whose bytes are not the ones written is refused before HDF5 reads any of it.
    public init(reading path: String) throws {
        self.path = path
        checksum = try FileChecksum.verify(path)
        rechecksumsOnClose = false
        id = try Self.open(path, flags: cnn_h5f_acc_rdonly(), failure: "cannot open as HDF5")
    }

    /// Opens an existing file for reading and writing (checked as `init(reading:)`). A
    /// checksummed file gets a new checksum when it is closed, since the changes are meant.
    public init(updating path: String) throws {
        self.path = path
        checksum = try FileChecksum.verify(path)
        rechecksumsOnClose = checksum == .verified
        id = try Self.open(path, flags: cnn_h5f_acc_rdwr(), failure: "cannot open for writing")
    }

    /// Opens a file read-only without checking it: for rewriting the checksum of a file this
    /// process has just changed.
    private init(trusting path: String) throws {
        self.path = path
        checksum = .absent
        rechecksumsOnClose = false
        id = try Self.open(path, flags: cnn_h5f_acc_rdonly(), failure: "cannot open as HDF5")
    }

    private static func open(_ path: String, flags: UInt32, failure: String) throws -> hid_t {
        cnn_h5_silence_errors()
        guard H5Fis_hdf5(path) > 0 else { throw HDF5Error("\(path): not an HDF5 file (or missing, or truncated)") }
        let id = H5Fopen(path, flags, cnn_h5p_default())
        guard id >= 0 else { throw HDF5Error("\(path): \(failure)") }
        return id
    }

    /// A file that lives in memory only, to be taken out whole with `checksummedImage()`: lets
    /// a writer serialize quickly and leave the slow disk write to another thread. It reserves
    /// the user block that the checksum header fills.
    public init(inMemoryNamed name: String) throws {
        cnn_h5_silence_errors()
        path = name
        checksum = .absent
        rechecksumsOnClose = false
        let fapl = H5Pcreate(cnn_h5p_file_access())
        defer { H5Pclose(fapl) }
        H5Pset_fapl_core(fapl, 1 << 22, false)
        let fcpl = H5Pcreate(cnn_h5p_file_create())
        defer { H5Pclose(fcpl) }
        H5Pset_userblock(fcpl, hsize_t(FileChecksum.headerSize))
        id = H5Fcreate(name, cnn_h5f_acc_trunc(), fcpl, fapl)
        guard id >= 0 else { throw HDF5Error("\(name): cannot create an in-memory HDF5 file") }
    }

    /// The bytes HDF5 holds for the file, without its user block.
    private func image() throws -> [UInt8] {
        try flush()
        let size = H5Fget_file_image(id, nil, 0)
        guard size > 0 else { throw HDF5Error("\(path): cannot take the file image") }
        var bytes = [UInt8](repeating: 0, count: size)
        guard H5Fget_file_image(id, &bytes, size) == size else { throw HDF5Error("\(path): cannot take the file image") }
        return bytes
    }

    /// The bytes of the whole file as it is to be written to disk, with its checksum header and
    /// table (see `FileChecksum`). The file must have a user block of `FileChecksum.headerSize`
    /// bytes, as `init(inMemoryNamed:)` makes.
    public func checksummedImage() throws -> [UInt8] {
        let fcpl = H5Fget_create_plist(id)
        defer { H5Pclose(fcpl) }
        var userBlock: hsize_t = 0
        guard H5Pget_userblock(fcpl, &userBlock) >= 0, userBlock == FileChecksum.headerSize else {
            throw HDF5Error("\(path): has a user block of \(userBlock) bytes, not the \(FileChecksum.headerSize) a checksum header needs")
        }
        let image = try image()
        let datasets = try root.allDatasets().compactMap { dataset in dataset.storage.map { (dataset.path, $0.offset, $0.length) } }
        return FileChecksum.seal(image: image, datasets: datasets)
    }

    /// Rewrites the checksum of a checksummed file this process has changed through HDF5.
    private static func rechecksum(_ path: String) throws {
        let bytes = try HDF5File(trusting: path).checksummedImage()
        try writeDurably(bytes, to: path)
    }

    /// Creates (or truncates) a file for writing, without a checksum (the files cnn-train
    /// keeps are made in memory and written with `checksummedImage()`).
    public init(creating path: String) throws {
        cnn_h5_silence_errors()
        self.path = path
        checksum = .absent
        rechecksumsOnClose = false
        id = H5Fcreate(path, cnn_h5f_acc_trunc(), cnn_h5p_default(), cnn_h5p_default())
        guard id >= 0 else { throw HDF5Error("\(path): cannot create HDF5 file") }
    }

    deinit {
        H5Fclose(id)
        guard rechecksumsOnClose else { return }
        do { try Self.rechecksum(path) } catch {
            // A stale checksum makes the file refused later, the safe side; say why now.
            FileHandle.standardError.write(Data("warning: \(path): changed, but its checksum could not be rewritten: \(error)\n".utf8))
        }
    }

    public var root: HDF5Group { HDF5Group(file: self, id: H5Gopen2(id, "/", cnn_h5p_default()), path: "/") }

    /// Writes everything buffered to the file system.
    public func flush() throws {
        guard H5Fflush(id, H5F_SCOPE_GLOBAL) >= 0 else { throw HDF5Error("\(path): flush failed") }
    }
}

/// Something that can carry attributes: a group or a dataset.
public class HDF5Object {
    public let file: HDF5File
    let id: hid_t
    /// The object's path inside the file, for messages.
    public let path: String

    init(file: HDF5File, id: hid_t, path: String) {
        self.file = file
        self.id = id
        self.path = path
    }

    var location: String { "\(file.path):\(path)" }

    func childPath(_ name: String) -> String { path == "/" ? "/\(name)" : "\(path)/\(name)" }

    // MARK: - Attributes

    public func hasAttribute(_ name: String) -> Bool { H5Aexists(id, name) > 0 }

    private func openAttribute(_ name: String) throws -> hid_t {
        guard hasAttribute(name) else { throw HDF5Error("\(location): missing attribute '\(name)'") }
        let a = H5Aopen(id, name, cnn_h5p_default())
        guard a >= 0 else { throw HDF5Error("\(location): cannot open attribute '\(name)'") }
        return a
    }

    /// A numeric attribute (scalar or array) converted to Double.
    public func doubleAttributes(_ name: String) throws -> [Double] {
        let a = try openAttribute(name)
        defer { H5Aclose(a) }
        let space = H5Aget_space(a)
        defer { H5Sclose(space) }
        let n = max(Int(H5Sget_simple_extent_npoints(space)), 1)
        var values = [Double](repeating: 0, count: n)
        guard H5Aread(a, cnn_h5t_native_double(), &values) >= 0 else {
            throw HDF5Error("\(location): attribute '\(name)' is not numeric")
        }
        return values
    }

    public func doubleAttribute(_ name: String) throws -> Double { try doubleAttributes(name)[0] }

    public func intAttribute(_ name: String) throws -> Int64 {
        let a = try openAttribute(name)
        defer { H5Aclose(a) }
        var value: Int64 = 0
        guard H5Aread(a, cnn_h5t_native_int64(), &value) >= 0 else {
            throw HDF5Error("\(location): attribute '\(name)' is not an integer")
        }
        return value
    }

    /// A string attribute, fixed-length or variable-length.
    public func stringAttribute(_ name: String) throws -> String {
        let a = try openAttribute(name)
        defer { H5Aclose(a) }
        let type = H5Aget_type(a)
        defer { H5Tclose(type) }
        guard H5Tget_class(type) == H5T_STRING else { throw HDF5Error("\(location): attribute '\(name)' is not a string") }
        if H5Tis_variable_str(type) > 0 {
            let mem = variableStringType(like: type)
            defer { H5Tclose(mem) }
            var pointer: UnsafeMutablePointer<CChar>? = nil
            guard H5Aread(a, mem, &pointer) >= 0, let pointer else {
                throw HDF5Error("\(location): cannot read attribute '\(name)'")
            }
            defer { free(pointer) }
            return String(cString: pointer)
        }
        let size = H5Tget_size(type)
        var bytes = [CChar](repeating: 0, count: size + 1)
        guard H5Aread(a, type, &bytes) >= 0 else { throw HDF5Error("\(location): cannot read attribute '\(name)'") }
        return String(decoding: bytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public func setAttribute(_ name: String, _ value: String) throws {
        let type = H5Tcopy(cnn_h5t_c_s1())
        defer { H5Tclose(type) }
        H5Tset_size(type, max(value.utf8.count, 1))
        try writeAttribute(name, type: type, dims: []) { buffer in
            var bytes = Array(value.utf8CString)
            return H5Awrite(buffer, type, &bytes)
        }
    }

    public func setAttribute(_ name: String, _ value: Int64) throws {
        try writeAttribute(name, type: cnn_h5t_native_int64(), dims: []) { a in
            var v = value
            return H5Awrite(a, cnn_h5t_native_int64(), &v)
        }
    }

    public func setAttribute(_ name: String, _ value: Double) throws {
        try writeAttribute(name, type: cnn_h5t_native_double(), dims: []) { a in
            var v = value
            return H5Awrite(a, cnn_h5t_native_double(), &v)
        }
    }

    private func writeAttribute(_ name: String, type: hid_t, dims: [Int], _ write: (hid_t) -> herr_t) throws {
        if hasAttribute(name) { H5Adelete(id, name) }
        let space = dims.isEmpty ? H5Screate(H5S_SCALAR) : H5Screate_simple(Int32(dims.count), dims.map { hsize_t($0) }, nil)
        defer { H5Sclose(space) }
        let a = H5Acreate2(id, name, type, space, cnn_h5p_default(), cnn_h5p_default())
        guard a >= 0 else { throw HDF5Error("\(location): cannot create attribute '\(name)'") }
        defer { H5Aclose(a) }
        guard write(a) >= 0 else { throw HDF5Error("\(location): cannot write attribute '\(name)'") }
    }
}

/// The memory type for reading variable-length C strings stored as `stored` (whose
/// character set, ASCII or UTF-8, the memory type must share for HDF5 to convert).
func variableStringType(like stored: hid_t) -> hid_t {
    let t = H5Tcopy(cnn_h5t_c_s1())
    H5Tset_size(t, -1)  // H5T_VARIABLE
    H5Tset_cset(t, H5Tget_cset(stored))
    return t
}

/// A group: a folder of groups and datasets.
public final class HDF5Group: HDF5Object {
    deinit { H5Gclose(id) }

    public func contains(_ name: String) -> Bool {
        // Check each component: H5Lexists fails on a path whose parent is missing.
        var prefix = ""
        for part in name.split(separator: "/") {
            prefix += prefix.isEmpty ? String(part) : "/\(part)"
            guard H5Lexists(id, prefix, cnn_h5p_default()) > 0 else { return false }
        }
        return !prefix.isEmpty
    }

    /// Names of the direct members, in the file's (alphabetical) order.
    public func memberNames() throws -> [String] {
        var info = H5G_info_t()
        guard H5Gget_info(id, &info) >= 0 else { throw HDF5Error("\(location): cannot list members") }
        return try (0..<info.nlinks).map { i in
            let length = H5Lget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, i, nil, 0, cnn_h5p_default())
            guard length >= 0 else { throw HDF5Error("\(location): cannot read member \(i)") }
            var bytes = [CChar](repeating: 0, count: Int(length) + 1)
            H5Lget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, i, &bytes, Int(length) + 1, cnn_h5p_default())
            return String(decoding: bytes.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    public func isGroup(_ name: String) -> Bool {
        guard contains(name) else { return false }
        var info = H5O_info_t()
        guard H5Oget_info_by_name1(id, name, &info, cnn_h5p_default()) >= 0 else { return false }
        return info.type == H5O_TYPE_GROUP
    }

    public func group(_ name: String) throws -> HDF5Group {
        guard isGroup(name) else { throw HDF5Error("\(location): missing group '\(name)'") }
        let g = H5Gopen2(id, name, cnn_h5p_default())
        guard g >= 0 else { throw HDF5Error("\(location): cannot open group '\(name)'") }
        return HDF5Group(file: file, id: g, path: childPath(name))
    }

    /// Creates a group (and any missing parents).
    public func createGroup(_ name: String) throws -> HDF5Group {
        if isGroup(name) { return try group(name) }
        let lcpl = H5Pcreate(cnn_h5p_link_create())
        defer { H5Pclose(lcpl) }
        H5Pset_create_intermediate_group(lcpl, 1)
        let g = H5Gcreate2(id, name, lcpl, cnn_h5p_default(), cnn_h5p_default())
        guard g >= 0 else { throw HDF5Error("\(location): cannot create group '\(name)'") }
        return HDF5Group(file: file, id: g, path: childPath(name))
    }

    /// Unlinks a member (a dataset or group) from the file.
    public func remove(_ name: String) throws {
        guard contains(name), H5Ldelete(id, name, cnn_h5p_default()) >= 0 else { throw HDF5Error("\(location): cannot remove '\(name)'") }
    }

    /// Every dataset under this group, depth first in name order.
    public func allDatasets() throws -> [HDF5Dataset] {
        try memberNames().flatMap { name in isGroup(name) ? try group(name).allDatasets() : [try dataset(name)] }
    }

    public func dataset(_ name: String) throws -> HDF5Dataset {
        guard contains(name), !isGroup(name) else { throw HDF5Error("\(location): missing dataset '\(name)'") }
        let d = H5Dopen2(id, name, cnn_h5p_default())
        guard d >= 0 else { throw HDF5Error("\(location): cannot open dataset '\(name)'") }
        return HDF5Dataset(file: file, id: d, path: childPath(name))
    }

    // MARK: - Writing datasets

    public func write(_ name: String, shape: [Int], floats: UnsafeBufferPointer<Float>) throws {
        try write(name, shape: shape, type: cnn_h5t_native_float(), count: floats.count, data: floats.baseAddress)
    }

    /// Float values at their own precision: float32 or float64 datasets.
    public func write<R: BinaryFloatingPoint>(_ name: String, shape: [Int], reals: UnsafeBufferPointer<R>) throws {
        let type: hid_t
        switch MemoryLayout<R>.size {
        case 4: type = cnn_h5t_native_float()
        case 8: type = cnn_h5t_native_double()
        default: throw HDF5Error("\(location): cannot write \(R.self) values to '\(name)'")
        }
        try write(name, shape: shape, type: type, count: reals.count, data: reals.baseAddress)
    }

    public func write(_ name: String, shape: [Int], int64s: [Int64]) throws {
        try int64s.withUnsafeBufferPointer {
            try write(name, shape: shape, type: cnn_h5t_native_int64(), count: $0.count, data: $0.baseAddress)
        }
    }

    public func write(_ name: String, shape: [Int], doubles: [Double]) throws {
        try doubles.withUnsafeBufferPointer {
            try write(name, shape: shape, type: cnn_h5t_native_double(), count: $0.count, data: $0.baseAddress)
        }
    }

    public func write(_ name: String, shape: [Int], bytes: [UInt8]) throws {
        try bytes.withUnsafeBufferPointer {
            try write(name, shape: shape, type: cnn_h5t_native_uint8(), count: $0.count, data: $0.baseAddress)
        }
    }

    private func write(_ name: String, shape: [Int], type: hid_t, count: Int, data: UnsafeRawPointer?) throws {
        guard shape.reduce(1, *) == count else {
            throw HDF5Error("\(location): dataset '\(name)' of shape \(shape) given \(count) values")
        }
        let space = shape.isEmpty ? H5Screate(H5S_SCALAR) : H5Screate_simple(Int32(shape.count), shape.map { hsize_t($0) }, nil)
        defer { H5Sclose(space) }
        let lcpl = H5Pcreate(cnn_h5p_link_create())
        defer { H5Pclose(lcpl) }
        H5Pset_create_intermediate_group(lcpl, 1)
        let d = H5Dcreate2(id, name, type, space, lcpl, cnn_h5p_default(), cnn_h5p_default())
        guard d >= 0 else { throw HDF5Error("\(location): cannot create dataset '\(name)'") }
        defer { H5Dclose(d) }
        guard H5Dwrite(d, type, cnn_h5s_all(), cnn_h5s_all(), cnn_h5p_default(), data) >= 0 else {
            throw HDF5Error("\(location): cannot write dataset '\(name)'")
        }
    }
}

/// An n-dimensional array in a file, read whole and converted to the asked type by HDF5.
public final class HDF5Dataset: HDF5Object {
    deinit { H5Dclose(id) }

    /// Dimensions; empty for a scalar.
    public var shape: [Int] {
        let space = H5Dget_space(id)
        defer { H5Sclose(space) }
        let rank = Int(H5Sget_simple_extent_ndims(space))
        var dims = [hsize_t](repeating: 0, count: rank)
        H5Sget_simple_extent_dims(space, &dims, nil)
        return dims.map { Int($0) }
    }

    public var count: Int { shape.reduce(1, *) }

    /// Where the dataset's values lie in the file (absolute, user block included), or nil if
    /// they have no contiguous storage (an empty dataset).
    public var storage: (offset: Int, length: Int)? {
        let offset = H5Dget_offset(id), length = H5Dget_storage_size(id)
        guard offset != haddr_t.max, length > 0 else { return nil }
        return (Int(offset), Int(length))
    }

    public enum ElementKind { case float, integer, string, other }

    public var elementKind: ElementKind {
        let type = H5Dget_type(id)
        defer { H5Tclose(type) }
        switch H5Tget_class(type) {
        case H5T_FLOAT: return .float
        case H5T_INTEGER: return .integer
        case H5T_STRING: return .string
        default: return .other
        }
    }

    /// Bytes per element as stored.
    public var elementSize: Int {
        let type = H5Dget_type(id)
        defer { H5Tclose(type) }
        return H5Tget_size(type)
    }

    private func read<T>(_ memType: hid_t, zero: T, what: String) throws -> [T] {
        guard elementKind == .float || elementKind == .integer else {
            throw HDF5Error("\(location): expected numeric data, found \(elementKind)")
        }
        var values = [T](repeating: zero, count: count)
        let status = values.withUnsafeMutableBytes {
            H5Dread(id, memType, cnn_h5s_all(), cnn_h5s_all(), cnn_h5p_default(), $0.baseAddress)
        }
        guard status >= 0 else { throw HDF5Error("\(location): cannot read as \(what) (corrupt or truncated?)") }
        return values
    }

    /// The values converted to the tensor scalar type of this build.
    public func readReals<R: BinaryFloatingPoint>(as type: R.Type = R.self) throws -> [R] {
        MemoryLayout<R>.size == 8 ? try readDoubles().map { R($0) } : try readFloats().map { R($0) }
    }

    public func readFloats() throws -> [Float] { try read(cnn_h5t_native_float(), zero: 0, what: "float32") }
    public func readDoubles() throws -> [Double] { try read(cnn_h5t_native_double(), zero: 0, what: "float64") }
    public func readInt64s() throws -> [Int64] { try read(cnn_h5t_native_int64(), zero: 0, what: "int64") }
    public func readBytes() throws -> [UInt8] { try read(cnn_h5t_native_uint8(), zero: 0, what: "uint8") }

    /// A dataset of strings, fixed-length or variable-length.
    public func readStrings() throws -> [String] {
        let type = H5Dget_type(id)
        defer { H5Tclose(type) }
        guard H5Tget_class(type) == H5T_STRING else { throw HDF5Error("\(location): expected strings") }
        let n = count
        if H5Tis_variable_str(type) > 0 {
            let mem = variableStringType(like: type)
            defer { H5Tclose(mem) }
            var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: n)
            guard H5Dread(id, mem, cnn_h5s_all(), cnn_h5s_all(), cnn_h5p_default(), &pointers) >= 0 else {
                throw HDF5Error("\(location): cannot read strings")
            }
            defer { for p in pointers { free(p) } }
            return pointers.map { $0.map { String(cString: $0) } ?? "" }
        }
        let size = H5Tget_size(type)
        var bytes = [UInt8](repeating: 0, count: n * size)
        guard H5Dread(id, type, cnn_h5s_all(), cnn_h5s_all(), cnn_h5p_default(), &bytes) >= 0 else {
            throw HDF5Error("\(location): cannot read strings")
        }
        return (0..<n).map { i in String(decoding: bytes[(i * size)..<((i + 1) * size)].prefix { $0 != 0 }, as: UTF8.self) }
    }
}
