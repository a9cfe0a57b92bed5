import CZlib
import Foundation

/// A temporary folder for files a test writes, removed at the end.
final class Scratch {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("cnn-train-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        try Data(bytes).write(to: url.appendingPathComponent(name))
        return path(name)
    }

    /// Writes `bytes` gzip-compressed.
    @discardableResult
    func writeGzip(_ name: String, _ bytes: [UInt8]) throws -> String {
        let p = path(name)
        let file = gzopen(p, "wb")!
        bytes.withUnsafeBytes { _ = gzwrite(file, $0.baseAddress, UInt32($0.count)) }
        gzclose(file)
        return p
    }
}

/// IDX bytes: images (magic 0x0803, N×H×W) and labels (magic 0x0801, N).
enum IDXBytes {
    static func word(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 255), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)] }
    static func images(_ n: Int, _ h: Int, _ w: Int, magic: Int = 0x0803) -> [UInt8] {
        word(magic) + word(n) + word(h) + word(w) + (0..<(n * h * w)).map { UInt8($0 % 251) }
    }
    static func labels(_ values: [UInt8], magic: Int = 0x0801) -> [UInt8] { word(magic) + word(values.count) + values }
}
