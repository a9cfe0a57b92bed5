import Foundation

/// The temporary name `writeDurably` writes `path` under first: `.NAME.tmp` beside it.
public func temporaryPath(for path: String) -> String {
    let url = URL(fileURLWithPath: path)
    return url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp").path
}

/// Writes `bytes` to `path` so that the name holds either its previous contents or all of the
/// new ones, even across a crash or a full disk: the bytes go to `temporaryPath(for:)`, are
/// synced, and only then renamed over `path` (and the rename synced). On failure (no space,
/// a file-size limit, an I/O error) the temporary file is removed and the error names `path`
/// and the reason; `path` is untouched.
public func writeDurably(_ bytes: [UInt8], to path: String) throws {
    let temporary = temporaryPath(for: path)
    func failure(_ action: String) -> HDF5Error {
        let reason = String(cString: strerror(errno))
        unlink(temporary)
        return HDF5Error("\(path): cannot \(action) (\(reason)); nothing under this name was changed")
    }
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw failure("create \(temporary)") }
    var written = 0
    while written < bytes.count {
        let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else {
            if count == 0 { errno = EIO }
            let error = failure("write \(bytes.count) bytes, stopped after \(written)")
            close(fd)
            throw error
        }
        written += count
    }
    guard fsync(fd) == 0 else {
        let error = failure("sync \(temporary)")
        close(fd)
        throw error
    }
    guard close(fd) == 0 else { throw failure("close \(temporary)") }
    guard rename(temporary, path) == 0 else { throw failure("rename \(temporary) into place") }
    // Make the rename itself durable.
    let directory = open(URL(fileURLWithPath: path).deletingLastPathComponent().path, O_RDONLY)
    if directory >= 0 {
        _ = fsync(directory)
        close(directory)
    }
}
