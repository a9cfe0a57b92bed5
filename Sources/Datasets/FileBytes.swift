import CZlib
import Foundation

/// Reads a whole file, inflating it when it is gzip-compressed. The name must say which:
/// a `.gz` file that is not gzip, or gzip data under another name, is refused.
func readFileBytes(_ path: String) throws -> [UInt8] {
    guard let handle = FileHandle(forReadingAtPath: path) else {
        throw DataError(path, FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file")
    }
    let head = [UInt8](handle.readData(ofLength: 2))
    try? handle.close()
    let isGzip = head == [0x1F, 0x8B]
    let namedGzip = path.hasSuffix(".gz")
    if namedGzip && !isGzip { throw DataError(path, "is named .gz but is not gzip-compressed") }
    if !namedGzip && isGzip { throw DataError(path, "is gzip-compressed but not named .gz (expected raw bytes)") }
    if !isGzip {
        guard let data = FileManager.default.contents(atPath: path) else { throw DataError(path, "cannot be read") }
        return [UInt8](data)
    }
    return try inflate(path)
}

/// The uncompressed contents of a gzip file, refusing truncated or corrupt streams.
private func inflate(_ path: String) throws -> [UInt8] {
    guard let file = gzopen(path, "rb") else { throw DataError(path, "cannot be opened") }
    defer { gzclose(file) }
    gzbuffer(file, 1 << 17)
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = chunk.withUnsafeMutableBytes { gzread(file, $0.baseAddress, UInt32($0.count)) }
        if n < 0 {
            var code: Int32 = 0
            let message = gzerror(file, &code).map { String(cString: $0) } ?? "unknown error"
            throw DataError(path, "is corrupt gzip data (\(message))")
        }
        if n == 0 { break }
        out.append(contentsOf: chunk[0..<Int(n)])
    }
    // gzread reports a stream cut short as end of file plus an error state.
    var code: Int32 = 0
    _ = gzerror(file, &code)
    if code != Z_OK && code != Z_STREAM_END { throw DataError(path, "is truncated gzip data") }
    return out
}
