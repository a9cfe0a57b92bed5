import Datasets
import Foundation
import HDF5
import XCTest

final class IDXReaderTests: XCTestCase {
    private func writeSet(_ s: Scratch, gzip: Bool, images: [UInt8] = IDXBytes.images(3, 4, 5),
                          labels: [UInt8] = IDXBytes.labels([0, 9, 4]), testImages: [UInt8]? = nil) throws {
        let write = gzip ? s.writeGzip : s.write
        let suffix = gzip ? ".gz" : ""
        try write("train-images-idx3-ubyte" + suffix, images)
        try write("train-labels-idx1-ubyte" + suffix, labels)
        try write("t10k-images-idx3-ubyte" + suffix, testImages ?? IDXBytes.images(2, 4, 5))
        try write("t10k-labels-idx1-ubyte" + suffix, IDXBytes.labels([1, 2]))
    }

    func testReadsRawAndGzipFilesAlike() throws {
        for gzip in [false, true] {
            let s = try Scratch()
            try writeSet(s, gzip: gzip)
            let splits = try IDX.loadSplits(directory: s.url.path)
            XCTAssertEqual(splits.train.count, 3)
            XCTAssertEqual(splits.test.count, 2)
            XCTAssertEqual(splits.train.labels, [0, 9, 4])
            XCTAssertEqual([splits.train.channels, splits.train.height, splits.train.width], [1, 4, 5])
            XCTAssertEqual(Array(splits.train.pixels.prefix(3)), [0, 1, 2])
            XCTAssertEqual(splits.train.prefix(2).count, 2)
        }
    }

    private func assertRefused(_ message: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(message), "'\(error)' should say '\(message)'", file: file, line: line)
            XCTAssertFalse("\(error)".contains("\n"), "one line", file: file, line: line)
        }
    }

    func testEachKindOfBrokenFileIsRefusedWithItsName() throws {
        let s = try Scratch()
        try writeSet(s, gzip: false, images: IDXBytes.images(3, 4, 5, magic: 0x0801))
        assertRefused("train-images-idx3-ubyte: has magic number 0x801, expected 0x803") { _ = try IDX.loadSplits(directory: s.url.path) }

        let t = try Scratch()
        try writeSet(t, gzip: false, images: Array(IDXBytes.images(3, 4, 5).dropLast(7)))
        assertRefused("train-images-idx3-ubyte: is truncated: 69 bytes where its header promises 76") { _ = try IDX.loadSplits(directory: t.url.path) }

        let u = try Scratch()
        try writeSet(u, gzip: false, labels: IDXBytes.labels([0, 1]))
        assertRefused("train-labels-idx1-ubyte: holds 2 labels but") { _ = try IDX.loadSplits(directory: u.url.path) }

        let v = try Scratch()
        try writeSet(v, gzip: false, labels: IDXBytes.labels([0, 10, 1]))
        assertRefused("train-labels-idx1-ubyte: label 10 is outside 0..<10") { _ = try IDX.loadSplits(directory: v.url.path) }

        let w = try Scratch()
        try writeSet(w, gzip: false)
        try FileManager.default.removeItem(atPath: w.path("t10k-labels-idx1-ubyte"))
        assertRefused("t10k-labels-idx1-ubyte: no such file") { _ = try IDX.loadSplits(directory: w.url.path) }
    }

    func testGzipAndRawMustMatchTheName() throws {
        let s = try Scratch()
        let gz = try s.writeGzip("images-raw-name", IDXBytes.images(1, 2, 2))
        let labels = try s.write("labels", IDXBytes.labels([1]))
        assertRefused("images-raw-name: is gzip-compressed but not named .gz") { _ = try IDX.load(images: gz, labels: labels) }
        let fake = try s.write("images.gz", IDXBytes.images(1, 2, 2))
        assertRefused("images.gz: is named .gz but is not gzip-compressed") { _ = try IDX.load(images: fake, labels: labels) }
    }

    func testTruncatedGzipIsRefused() throws {
        let s = try Scratch()
        let full = try s.writeGzip("full.gz", IDXBytes.images(50, 28, 28))
        let bytes = try Data(contentsOf: URL(fileURLWithPath: full))
        let cut = try s.write("cut.gz", [UInt8](bytes.prefix(bytes.count / 2)))
        let labels = try s.write("labels", IDXBytes.labels(Array(repeating: 1, count: 50)))
        assertRefused("cut.gz: is truncated") { _ = try IDX.load(images: cut, labels: labels) }
    }

    func testFashionMNISTFromDebian() throws {
        let dir = "/usr/share/datasets/fashion-mnist"
        try XCTSkipUnless(FileManager.default.fileExists(atPath: dir), "dataset-fashion-mnist is not installed")
        let splits = try IDX.loadSplits(directory: dir)
        XCTAssertEqual(splits.train.count, 60_000)
        XCTAssertEqual(splits.test.count, 10_000)
        XCTAssertEqual(Set(splits.train.labels), Set(0..<10))
    }
}

final class CIFARAndHDF5ReaderTests: XCTestCase {
    func testCIFARRecordsAndTheirErrors() throws {
        let s = try Scratch()
        func record(_ label: UInt8) -> [UInt8] { [label] + (0..<3072).map { UInt8($0 % 256) } }
        for i in 1...5 { try s.write("data_batch_\(i).bin", record(UInt8(i)) + record(0)) }
        try s.write("test_batch.bin", record(9))
        let splits = try CIFAR10.loadSplits(directory: s.url.path)
        XCTAssertEqual(splits.train.count, 10)
        XCTAssertEqual(splits.train.labels.prefix(2), [1, 0])
        XCTAssertEqual([splits.test.channels, splits.test.height, splits.test.width], [3, 32, 32])

        try s.write("test_batch.bin", Array(record(9).dropLast()))
        XCTAssertThrowsError(try CIFAR10.loadSplits(directory: s.url.path)) { XCTAssertTrue("\($0)".contains("test_batch.bin: is 3072 bytes, not a whole number"), "\($0)") }
        try s.write("test_batch.bin", record(12))
        XCTAssertThrowsError(try CIFAR10.loadSplits(directory: s.url.path)) { XCTAssertTrue("\($0)".contains("label 12 is outside"), "\($0)") }
    }

    func testHDF5SetsWithAndWithoutAChannelAxis() throws {
        let s = try Scratch()
        let path = s.path("set.h5")
        do {
            let root = try HDF5File(creating: path).root
            try root.write("train/images", shape: [3, 4, 4], bytes: [UInt8](repeating: 7, count: 48))
            try root.write("train/labels", shape: [3], int64s: [0, 1, 2])
            try root.write("test/images", shape: [2, 1, 4, 4], bytes: [UInt8](repeating: 9, count: 32))
            try root.write("test/labels", shape: [2], int64s: [2, 0])
        }
        let splits = try HDF5ImageSet.loadSplits(path: path)
        XCTAssertEqual(splits.train.count, 3)
        XCTAssertEqual(splits.test.channels, 1)
        XCTAssertEqual(splits.train.classes, 3)

        let bad = s.path("bad.h5")
        do {
            let root = try HDF5File(creating: bad).root
            try root.write("train/images", shape: [3, 4, 4], bytes: [UInt8](repeating: 7, count: 48))
            try root.write("train/labels", shape: [2], int64s: [0, 1])
        }
        XCTAssertThrowsError(try HDF5ImageSet.loadSplits(path: bad)) { XCTAssertTrue("\($0)".contains("'train/labels' has shape [2] for 3 images"), "\($0)") }
        let noTest = s.path("notest.h5")
        do {
            let root = try HDF5File(creating: noTest).root
            try root.write("train/images", shape: [1, 4, 4], bytes: [UInt8](repeating: 7, count: 16))
            try root.write("train/labels", shape: [1], int64s: [0])
        }
        XCTAssertThrowsError(try HDF5ImageSet.loadSplits(path: noTest)) { XCTAssertTrue("\($0)".contains("has no 'test' group"), "\($0)") }
    }
}
