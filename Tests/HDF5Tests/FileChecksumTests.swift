import Foundation
import HDF5
import XCTest

/// Checksummed HDF5 files: written from memory, verified on open, and each kind of damage
/// refused with a line naming the file and the damaged part.
final class FileChecksumTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("checksum-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try FileManager.default.removeItem(at: directory) }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// A small checksummed file: a float dataset in a group, an int64 scalar, an empty
    /// dataset (no storage) and attributes.
    private func writeChecksummed(_ name: String) throws -> [UInt8] {
        let file = try HDF5File(inMemoryNamed: name)
        let root = file.root
        try root.setAttribute("format", "test")
        try root.setAttribute("lr", 0.05)
        let weights = (0..<300).map { Float($0) / 7 }
        try weights.withUnsafeBufferPointer { try root.write("model/weight", shape: [3, 100], floats: $0) }
        try root.write("model/count", shape: [], int64s: [42])
        try root.write("empty", shape: [0], doubles: [])
        let bytes = try file.checksummedImage()
        try writeDurably(bytes, to: path(name))
        return bytes
    }

    /// `bytes` written to a new file, opened; the error it is refused with.
    private func refusal(_ bytes: [UInt8], _ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        try Data(bytes).write(to: URL(fileURLWithPath: path(name)))
        do {
            _ = try HDF5File(reading: path(name))
            XCTFail("\(name) was accepted", file: file, line: line)
            return ""
        } catch let error as HDF5Error {
            XCTAssertTrue(error.isDamage, "\(error) is marked as damage", file: file, line: line)
            XCTAssertTrue(error.description.hasPrefix(path(name) + ": "), "\(error) names the file", file: file, line: line)
            return String(error.description.dropFirst(path(name).count + 2))
        }
    }

    func testAChecksummedFileReadsBackVerifiedWithATableOfItsDatasets() throws {
        let bytes = try writeChecksummed("good.h5")
        XCTAssertEqual(String(decoding: bytes.prefix(28), as: UTF8.self), "cnn-train checksummed HDF5 1")
        let file = try HDF5File(reading: path("good.h5"))
        XCTAssertEqual(file.checksum, .verified)
        let root = file.root
        XCTAssertEqual(try root.stringAttribute("format"), "test")
        XCTAssertEqual(try root.dataset("model/weight").readFloats(), (0..<300).map { Float($0) / 7 })
        XCTAssertEqual(try root.dataset("model/count").readInt64s(), [42])
        // The table lists every dataset with storage where HDF5 itself places it.
        let extents = try XCTUnwrap(FileChecksum.extents(in: bytes))
        XCTAssertEqual(Set(extents.map(\.path)), ["/model/weight", "/model/count"], "the empty dataset has no storage")
        for extent in extents {
            let storage = try XCTUnwrap(try root.dataset(String(extent.path.dropFirst())).storage)
            XCTAssertEqual(extent.offset, storage.offset)
            XCTAssertEqual(extent.length, storage.length)
        }
        XCTAssertEqual(extents.first { $0.path == "/model/weight" }?.length, 1200)
    }

    func testAFileWithoutAChecksumOpensUnverified() throws {
        try HDF5File(creating: path("plain.h5")).root.write("x", shape: [1], doubles: [1])
        XCTAssertEqual(try HDF5File(reading: path("plain.h5")).checksum, .absent)
        XCTAssertThrowsError(try HDF5File(creating: path("no-block.h5")).checksummedImage()) {
            XCTAssertTrue("\($0)".hasSuffix("no-block.h5: has a user block of 0 bytes, not the 512 a checksum header needs"), "\($0)")
        }
        XCTAssertEqual(FileChecksum.Status.absent.warning(for: "w.h5"),
                       "warning: w.h5 has no checksum (written by an older cnn-train or another tool); loaded without verification")
        XCTAssertNil(FileChecksum.Status.verified.warning(for: "w.h5"))
    }

    func testEachKindOfDamageIsRefusedNamingWhatDiffers() throws {
        let good = try writeChecksummed("good.h5")
        let extents = try XCTUnwrap(FileChecksum.extents(in: good))
        let weight = try XCTUnwrap(extents.first { $0.path == "/model/weight" })
        func flipped(_ at: Int, _ mask: UInt8 = 1) -> [UInt8] {
            var bytes = good
            bytes[at] ^= mask
            return bytes
        }
        XCTAssertEqual(try refusal(flipped(weight.offset + 601, 0x10), "data.h5"), "checksum mismatch in dataset /model/weight")
        // Byte 520 is the superblock's version, right after HDF5's signature at 512.
        XCTAssertEqual(try refusal(flipped(520), "superblock.h5"),
                       "checksum mismatch in the HDF5 metadata (groups, attributes or object headers; every dataset's bytes match)")
        // The table ends the file.
        XCTAssertEqual(try refusal(flipped(good.count - 3), "table.h5"), "checksum mismatch in the checksum table (after the HDF5 data)")
        let header = "damaged checksum header (its first 512 bytes are not the header cnn-train writes)"
        XCTAssertEqual(try refusal(flipped(40), "header.h5"), header)
        XCTAssertEqual(try refusal(flipped(500), "padding.h5"), header, "a flip in the header's zero padding")
        // A hex digit's case is one bit ('a' ^ 0x20 == 'A'): the same value, still refused.
        let crcLine = try XCTUnwrap((0..<512).first { good[$0..<($0 + 6)].elementsEqual("crc32 ".utf8) })
        let letter = try XCTUnwrap((crcLine + 6..<crcLine + 14).first { good[$0] >= UInt8(ascii: "a") }, "this file's CRC has a letter")
        XCTAssertEqual(try refusal(flipped(letter, 0x20), "case.h5"), header)
        XCTAssertEqual(try refusal(Array(good.prefix(good.count - 100)), "cut.h5"), "truncated: \(good.count - 100) of \(good.count) bytes")
        XCTAssertEqual(try refusal(Array(good.prefix(100)), "stub.h5"), "truncated: 100 bytes, shorter than its 512-byte checksum header")
        XCTAssertEqual(try refusal(good + [0], "long.h5"), "1 bytes longer than written (\(good.count))")
        // Neither HDF5's signature nor the header's first line at the start: not taken for a checksummed file.
        try "not hdf5 at all".write(toFile: path("text.h5"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try HDF5File(reading: path("text.h5"))) {
            XCTAssertTrue("\($0)".contains("not an HDF5 file"), "\($0)")
        }
    }

    func testUpdatingAChecksummedFileRewritesItsChecksum() throws {
        _ = try writeChecksummed("edit.h5")
        do {
            let file = try HDF5File(updating: path("edit.h5"))
            try file.root.remove("model/count")
            try file.root.setAttribute("note", "edited")
        }
        let file = try HDF5File(reading: path("edit.h5"))
        XCTAssertEqual(file.checksum, .verified)
        XCTAssertFalse(file.root.contains("model/count"))
        XCTAssertEqual(try file.root.stringAttribute("note"), "edited")
        XCTAssertEqual(try file.root.dataset("model/weight").readFloats().count, 300)
    }

    func testAFailedDurableWriteLeavesThePathAndNoTemporaryFile() throws {
        // A directory in the way: the bytes are written and synced, the rename fails.
        let blocked = path("blocked.h5")
        try FileManager.default.createDirectory(atPath: blocked + "/inside", withIntermediateDirectories: true)
        XCTAssertThrowsError(try writeDurably([1, 2, 3], to: blocked)) {
            XCTAssertTrue("\($0)".hasPrefix("\(blocked): cannot rename"), "\($0)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: blocked), ["inside"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: temporaryPath(for: blocked)), "the temporary file is removed")
        XCTAssertThrowsError(try writeDurably([1], to: path("missing/x.h5"))) { XCTAssertTrue("\($0)".contains("cannot create"), "\($0)") }
        // A successful write replaces the whole file.
        try writeDurably([1, 2, 3], to: path("small"))
        try writeDurably([4], to: path("small"))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("small"))), Data([4]))
        XCTAssertEqual(temporaryPath(for: "/a/b/ckpt.h5"), "/a/b/.ckpt.h5.tmp")
    }
}
