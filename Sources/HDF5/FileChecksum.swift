import CZlib
import Foundation

/// A checksum over every byte of the HDF5 files cnn-train writes (checkpoints, weights),
/// checked whenever one is opened.
///
/// A checksummed file is an ordinary HDF5 file with a 512-byte user block in front (which
/// HDF5 reserves for applications and skips; h5py and PyTorch tools read the file as usual)
/// and a table after HDF5's end of allocation (HDF5 ignores bytes past it):
///
///     [0, 512)          header, ASCII lines, zero-padded:
///                         cnn-train checksummed HDF5 1
///                         size <bytes in the whole file>
///                         crc32 <CRC-32 of bytes [512, size)>
///                         table <offset> <length> <CRC-32 of the table>
///     [512, offset)     the HDF5 file (its superblock at 512)
///     [offset, size)    the table: "<offset> <length> <CRC-32> <dataset path>" per dataset
///                       with storage, one line each
///
/// Why the whole file rather than one checksum per dataset (HDF5's Fletcher32 filter): a
/// flipped bit in an attribute value, an object header or a B-tree that HDF5 still parses
/// would load a wrong file without a word. Here the CRC covers every byte after the header,
/// and the header must equal byte for byte the one its own values produce, so a change
/// anywhere in the file is refused — and refused before HDF5 parses anything, so damaged
/// metadata cannot make the library misbehave. The table's per-dataset CRCs only name what
/// was damaged. CRC-32 (zlib's, the one of gzip and PNG) catches every burst of up to 32
/// bits (any flipped bit or byte) and any other damage with probability 1 − 2⁻³².
public enum FileChecksum {
    /// Bytes reserved in front of the HDF5 superblock (HDF5's smallest user block).
    public static let headerSize = 512
    static let magic = "cnn-train checksummed HDF5 1"
    static let hdf5Signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]

    /// What opening a file found.
    public enum Status: Sendable {
        /// The checksum matched: the bytes are the ones written.
        case verified
        /// The file has no checksum (written before checkpoint format 2, or by another tool).
        case absent

        /// The one-line warning for loading `path` unverified, or nil when it was verified.
        public func warning(for path: String) -> String? {
            self == .verified ? nil
                : "warning: \(path) has no checksum (written by an older cnn-train or another tool); loaded without verification"
        }
    }

    /// Where one dataset's bytes lie in a checksummed file.
    public struct Extent: Equatable, Sendable {
        public var path: String
        public var offset: Int, length: Int
        public var crc: UInt32
    }

    // MARK: - Writing

    /// The bytes of a checksummed file: `image` is an HDF5 file image created with a user block
    /// of `headerSize` bytes (which the image leaves out), `datasets` the absolute extents of
    /// its datasets' storage.
    static func seal(image: [UInt8], datasets: [(path: String, offset: Int, length: Int)]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: headerSize)
        bytes.reserveCapacity(headerSize + image.count + 64 * datasets.count)
        bytes += image
        let tableOffset = bytes.count
        let table = datasets.sorted { $0.offset < $1.offset }.map { d in
            "\(d.offset) \(d.length) \(hex(crc32(bytes[d.offset..<(d.offset + d.length)]))) \(d.path)\n"
        }.joined()
        bytes += Array(table.utf8)
        let header = Header(size: bytes.count, crc: crc32(bytes[headerSize...]),
                            tableOffset: tableOffset, tableLength: table.utf8.count, tableCRC: crc32(ArraySlice(table.utf8)))
        bytes.replaceSubrange(0..<headerSize, with: header.bytes)
        return bytes
    }

    // MARK: - Verifying

    /// Checks the file at `path` before HDF5 reads it. Returns `.absent` for a file that does
    /// not start with a checksum header (an HDF5 file without one, or not HDF5 at all: HDF5
    /// then judges it); throws an error marked as damage, naming the file and the part that
    /// differs, for a checksummed file whose bytes are not the ones written.
    public static func verify(_ path: String) throws -> Status {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return .absent }  // HDF5 reports a missing or unreadable file
        defer { close(fd) }
        var stats = stat()
        guard fstat(fd, &stats) == 0, stats.st_mode & S_IFMT == S_IFREG else { return .absent }
        let size = Int(stats.st_size)
        let front = try read(fd, at: 0, count: min(size, headerSize + hdf5Signature.count), path: path)
        guard looksChecksummed(front) else { return .absent }
        func damaged(_ problem: String) -> HDF5Error { HDF5Error("\(path): \(problem)", damage: true) }
        guard size >= headerSize else { throw damaged("truncated: \(size) bytes, shorter than its \(headerSize)-byte checksum header") }
        guard let header = Header(parsing: Array(front.prefix(headerSize))) else {
            throw damaged("damaged checksum header (its first \(headerSize) bytes are not the header cnn-train writes)")
        }
        guard size == header.size else {
            throw damaged(size < header.size ? "truncated: \(size) of \(header.size) bytes" : "\(size - header.size) bytes longer than written (\(header.size))")
        }
        guard try crc32(of: fd, from: headerSize, to: size, path: path) != header.crc else { return .verified }
        throw damaged("checksum mismatch in \(try damagedPart(fd, header, path: path))")
    }

    /// Whether the first bytes of a file say it should carry a checksum header: the header's
    /// first line (up to a few damaged bytes), or an HDF5 superblock right after the user block.
    static func looksChecksummed(_ front: [UInt8]) -> Bool {
        if front.starts(with: hdf5Signature) { return false }
        if front.count >= headerSize + hdf5Signature.count, Array(front[headerSize...]).starts(with: hdf5Signature) { return true }
        let expected = Array(magic.utf8)
        if front.count < expected.count { return !front.isEmpty && expected.starts(with: front) }  // cut short
        // Text or another tool's user block differs from the first line in far more bits.
        return zip(front, expected).reduce(0) { $0 + ($1.0 ^ $1.1).nonzeroBitCount } <= 16
    }

    /// The first part that differs from what was written: a dataset, the table, or else the
    /// HDF5 metadata (groups, attributes, object headers), which has no checksum of its own.
    private static func damagedPart(_ fd: Int32, _ header: Header, path: String) throws -> String {
        let tableBytes = try read(fd, at: header.tableOffset, count: header.tableLength, path: path)
        guard crc32(tableBytes[...]) == header.tableCRC, let table = parseTable(tableBytes, before: header.tableOffset) else {
            return "the checksum table (after the HDF5 data)"
        }
        for extent in table where try crc32(of: fd, from: extent.offset, to: extent.offset + extent.length, path: path) != extent.crc {
            return "dataset \(extent.path)"
        }
        return "the HDF5 metadata (groups, attributes or object headers; every dataset's bytes match)"
    }

    /// The table of a checksummed file, nil if any line is malformed or out of bounds.
    static func parseTable(_ bytes: [UInt8], before end: Int) -> [Extent]? {
        var extents: [Extent] = []
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            let fields = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
            guard fields.count == 4, let offset = Int(fields[0]), let length = Int(fields[1]), let crc = UInt32(fields[2], radix: 16),
                  offset >= headerSize, length >= 0, offset + length <= end else { return nil }
            extents.append(Extent(path: String(fields[3]), offset: offset, length: length, crc: crc))
        }
        return extents
    }

    /// The dataset extents recorded in a checksummed file's bytes (for tests and tools).
    public static func extents(in bytes: [UInt8]) -> [Extent]? {
        guard let header = Header(parsing: Array(bytes.prefix(headerSize))), header.tableOffset + header.tableLength <= bytes.count else { return nil }
        return parseTable(Array(bytes[header.tableOffset..<(header.tableOffset + header.tableLength)]), before: header.tableOffset)
    }

    // MARK: - Header

    /// The header's values; `bytes` is the only form it may take in a file.
    struct Header: Equatable {
        var size: Int, crc: UInt32
        var tableOffset: Int, tableLength: Int, tableCRC: UInt32

        var bytes: [UInt8] {
            let text = "\(magic)\nsize \(size)\ncrc32 \(hex(crc))\ntable \(tableOffset) \(tableLength) \(hex(tableCRC))\n"
            return Array(text.utf8) + [UInt8](repeating: 0, count: headerSize - text.utf8.count)
        }

        /// Parses a header, nil unless `raw` is exactly the canonical form of the values read
        /// (so a flipped bit anywhere in it, padding and letter case included, is caught).
        init?(parsing raw: [UInt8]) {
            guard raw.count == headerSize else { return nil }
            let lines = String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self).split(separator: "\n").map { $0.split(separator: " ") }
            guard lines.count == 4, lines[0].joined(separator: " ") == magic,
                  lines[1].count == 2, lines[1][0] == "size", let size = Int(lines[1][1]),
                  lines[2].count == 2, lines[2][0] == "crc32", let crc = UInt32(lines[2][1], radix: 16),
                  lines[3].count == 4, lines[3][0] == "table", let offset = Int(lines[3][1]), let length = Int(lines[3][2]),
                  let tableCRC = UInt32(lines[3][3], radix: 16),
                  offset >= headerSize, length >= 0, offset + length == size else { return nil }
            self.init(size: size, crc: crc, tableOffset: offset, tableLength: length, tableCRC: tableCRC)
            guard bytes == raw else { return nil }
        }

        init(size: Int, crc: UInt32, tableOffset: Int, tableLength: Int, tableCRC: UInt32) {
            (self.size, self.crc, self.tableOffset, self.tableLength, self.tableCRC) = (size, crc, tableOffset, tableLength, tableCRC)
        }
    }

    // MARK: - Bytes

    static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }

    static func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        bytes.withUnsafeBufferPointer { buffer in
            var crc = CZlib.crc32(0, nil, 0)
            var start = 0
            while start < buffer.count {  // zlib takes 32-bit lengths
                let count = min(buffer.count - start, 1 << 30)
                crc = CZlib.crc32(crc, buffer.baseAddress! + start, uInt(count))
                start += count
            }
            return UInt32(crc)
        }
    }

    /// CRC-32 of bytes [start, end) of an open file, read in pieces.
    private static func crc32(of fd: Int32, from start: Int, to end: Int, path: String) throws -> UInt32 {
        var crc = CZlib.crc32(0, nil, 0)
        var buffer = [UInt8](repeating: 0, count: 1 << 22)
        var offset = start
        while offset < end {
            let wanted = min(buffer.count, end - offset)
            let got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, wanted, off_t(offset)) }
            guard got > 0 else { throw HDF5Error("\(path): cannot read bytes at \(offset) (\(String(cString: strerror(errno))))") }
            crc = buffer.withUnsafeBufferPointer { CZlib.crc32(crc, $0.baseAddress, uInt(got)) }
            offset += got
        }
        return UInt32(crc)
    }

    private static func read(_ fd: Int32, at offset: Int, count: Int, path: String) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let got = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset + done)) }
            guard got > 0 else {
                if got == 0 { return Array(bytes.prefix(done)) }
                throw HDF5Error("\(path): cannot read bytes at \(offset + done) (\(String(cString: strerror(errno))))")
            }
            done += got
        }
        return bytes
    }
}
