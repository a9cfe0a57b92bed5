import Foundation
import XCTest

/// cluster/report.py's model: it must recover the network and the overlap that made the
/// measurements. The sweep's points are written here from known parameters, so any error
/// in the fits or in the table shows.
final class ScalingReportTests: XCTestCase {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../cluster/report.py").standardized

    /// Points of one model on 2, 4 and 8 ranks over two link rates, as a sweep would measure
    /// them if the network were `bandwidth` bytes/s (of a link's rate) with `latency`
    /// s per message, and the all-reduce hid behind `hidden` of forward+backward.
    private func sweep(achieved: Double, latency: Double, hidden: Double) -> String {
        var lines = ["model,placement,link,scaling,ranks,hosts,side,global_batch,images_per_sec,seconds_per_step,compute_sec,"
                     + "comm_wait_sec,update_sec,bytes_per_step,blocking_allreduce_sec,overlap,blas_core"]
        let bytes = 44_713_512.0
        lines.append("resnet18,local,-,weak,1,1,96,16,20.0,0.8,0.79,0,0.01,0,0,0,Zen")
        for (link, rate) in [("1gbit", 1e9 / 8), ("10gbit", 1e10 / 8)] {
            for ranks in [2, 4, 8] {
                let n = Double(ranks), compute = 0.8 * n / 2  // oversubscribed ranks compute slower
                let blocking = 2 * (n - 1) / n * bytes / (achieved * rate) + 2 * (n - 1) * latency
                let wait = max(0, blocking - hidden * compute)
                let step = compute + 0.01 + wait
                lines.append("resnet18,emulated,\(link),weak,\(ranks),2,96,\(16 * ranks),\(16 * n / step),\(step),\(compute),"
                             + "\(wait),0.01,\(Int(bytes)),\(blocking),\(1 - wait / blocking),Zen")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    func testFitsTheNetworkAndTheOverlapThatMadeThePoints() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("report-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let csv = folder.appendingPathComponent("sweep.csv")
        try sweep(achieved: 0.64, latency: 2e-4, hidden: 0.35).write(to: csv, atomically: true, encoding: .utf8)

        let outcome = SlurmTests.run("env", ["python3", Self.script.path, csv.path])
        XCTAssertEqual(outcome.status, 0, outcome.out + outcome.err)

        let markdown = try String(contentsOf: folder.appendingPathComponent("report.md"), encoding: .utf8)
        // Exact points: the least-squares fits return the parameters to the printed digits.
        XCTAssertTrue(markdown.contains("- 1gbit links: fitted bandwidth 0.640 Gbit/s, latency 200 µs per message"), markdown)
        XCTAssertTrue(markdown.contains("- 10gbit links: fitted bandwidth 6.400 Gbit/s, latency 200 µs per message"), markdown)
        XCTAssertTrue(markdown.contains("- resnet18: h = 0.350 (6 multi-rank points)"), markdown)
        // Each point's prediction is its measured step, and the overlap column is the measured one.
        let rows = markdown.split(separator: "\n").filter { $0.hasPrefix("| resnet18 | emulated |") }
        XCTAssertEqual(rows.count, 6)
        for row in rows {
            let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            XCTAssertEqual(cells[8], cells.last, "predicted = measured s/step: \(row)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent("scaling.svg").path))
    }
}
