import Distributed
import Foundation

// MARK: - Console

/// The progress a person watches: on a terminal a live line (epoch, step, loss, accuracy,
/// images/s, ETA) redrawn in place; otherwise a plain line every `interval` seconds. One
/// summary line per epoch and one at the end either way.
public final class ConsoleReporter: TrainingObserver {
    private let epochs: Int
    private let interactive: Bool
    private let interval: Double
    private let clock: () -> Double
    private let write: (String) -> Void
    private let started: Double
    private var lastLine = 0.0
    /// The run's step count when this process began: a resumed run has steps behind it that
    /// this clock did not time.
    private var stepsBefore: Int?

    /// Whether lines show the compute/communication split (runs over several ranks).
    private let showsCommunication: Bool

    /// Under a launcher (mpirun, srun), standard output is a pseudo-terminal whatever the user's is, so plain lines are used.
    /// `clock` (seconds) and `write` (text as is, newlines included) are replaceable for tests;
    /// by default output is flushed at once, since mpirun forwards it as it comes.
    public init(epochs: Int, showsCommunication: Bool = false,
                interactive: Bool = isatty(STDOUT_FILENO) == 1 && Launch.current == nil,
                interval: Double = 5, clock: @escaping () -> Double = now,
                write: @escaping (String) -> Void = { print($0, terminator: ""); fflush(nil) }) {
        self.epochs = epochs
        self.showsCommunication = showsCommunication
        self.interactive = interactive
        self.interval = interval
        self.clock = clock
        self.write = write
        started = clock()
    }

    public func stepFinished(_ p: StepProgress) {
        let t = clock()
        let stepsBefore = self.stepsBefore ?? p.step - 1
        self.stepsBefore = stepsBefore
        guard t - lastLine >= (interactive ? 0.2 : interval) || p.step == p.totalSteps else { return }
        lastLine = t
        let eta = (t - started) / Double(p.step - stepsBefore) * Double(p.totalSteps - p.step)
        var line = String(format: "epoch %d/%d step %d/%d loss %.4f acc %.4f %.1f img/s ETA %@",
                          p.epoch + 1, epochs, p.batch, p.batchesPerEpoch, p.tally.loss, p.tally.accuracy, p.imagesPerSecond,
                          Self.hoursMinutesSeconds(eta))
        if showsCommunication { line += String(format: " comm %.0f%%", 100 * p.communicationShare) }
        write(interactive ? "\r\u{1B}[2K" + line : line + "\n")
    }

    public func epochFinished(_ r: EpochRecord) {
        clearLine()
        var line = String(format: "epoch %d/%d: train loss %.4f acc %.4f | test loss %.4f acc %.4f | %.1f img/s, %.1f s",
                          r.epoch, epochs, r.trainLoss, r.trainAccuracy, r.testLoss, r.testAccuracy, r.imagesPerSecond, r.seconds)
        if showsCommunication { line += String(format: " (compute %.1f s, communication %.1f s)", r.computeSeconds, r.communicationSeconds) }
        write(line + "\n")
    }

    public func runFinished(_ r: EpochRecord) {
        clearLine()
        write(String(format: "done after %d steps (%.1f s): test loss %.4f, test accuracy %.4f\n",
                     r.step, clock() - started, r.testLoss, r.testAccuracy))
    }

    private func clearLine() { if interactive { write("\r\u{1B}[2K") } }

    /// "m:ss" under an hour, "h:mm:ss" from one; "?" before a rate is known.
    static func hoursMinutesSeconds(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}

// MARK: - Metrics file

/// `--metrics FILE`: one JSON line per epoch and a last `done` line, then the curves as SVG
/// beside the file (metrics.jsonl -> metrics.svg).
public final class MetricsLog: TrainingObserver {
    public let path: String
    private let handle: FileHandle
    private var history: [EpochRecord] = []
    private let title: String

    /// `history`: epochs a resumed run already completed, written first.
    public init(path: String, title: String, history: [EpochRecord] = []) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path, NSLocalizedDescriptionKey: "cannot write metrics file \(path)"])
        }
        self.path = path
        self.handle = handle
        self.title = title
        for record in history { epochFinished(record) }
    }

    public var plotPath: String { (path as NSString).deletingPathExtension + ".svg" }

    public func stepFinished(_ progress: StepProgress) {}

    public func epochFinished(_ record: EpochRecord) {
        history.append(record)
        write("epoch", record)
    }

    public func runFinished(_ record: EpochRecord) {
        write("done", record)
        try? handle.close()
        try? CurvePlot(title: title, records: history).svg.write(toFile: plotPath, atomically: true, encoding: .utf8)
    }

    private func write(_ event: String, _ r: EpochRecord) {
        func number(_ x: Double) -> String { x.isFinite ? "\(x)" : "null" }
        let line = "{\"event\":\"\(event)\",\"epoch\":\(r.epoch),\"step\":\(r.step),\"train_loss\":\(number(r.trainLoss)),"
            + "\"train_acc\":\(number(r.trainAccuracy)),\"test_loss\":\(number(r.testLoss)),\"test_acc\":\(number(r.testAccuracy)),"
            + "\"images_per_sec\":\(number(r.imagesPerSecond)),\"seconds\":\(number(r.seconds)),"
            + "\"compute_sec\":\(number(r.computeSeconds)),\"comm_sec\":\(number(r.communicationSeconds))}\n"
        handle.write(Data(line.utf8))
    }
}

// MARK: - Plot

/// The curves as D2L draws them: train loss, train accuracy and test accuracy against epochs.
public struct CurvePlot {
    public let title: String
    public let records: [EpochRecord]

    public var svg: String {
        let width = 560.0, height = 380.0, left = 60.0, right = 20.0, top = 40.0, bottom = 50.0
        let plotW = width - left - right, plotH = height - top - bottom
        let maxEpoch = Double(max(records.last?.epoch ?? 1, 1))
        let yMax = max(1, (records.map(\.trainLoss).filter(\.isFinite).max() ?? 1).rounded(.up))
        func x(_ epoch: Double) -> Double { left + plotW * (maxEpoch == 1 ? 0.5 : (epoch - 1) / (maxEpoch - 1)) }
        func y(_ v: Double) -> Double { top + plotH * (1 - v / yMax) }
        var out = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(width / 2)" y="22" text-anchor="middle" font-size="14">\(escape(title))</text>
        <rect x="\(left)" y="\(top)" width="\(plotW)" height="\(plotH)" fill="none" stroke="#444"/>

        """
        for i in 0...4 {
            let v = yMax * Double(i) / 4
            out += "<line x1=\"\(left)\" y1=\"\(y(v))\" x2=\"\(left + plotW)\" y2=\"\(y(v))\" stroke=\"#ddd\"/>"
            out += "<text x=\"\(left - 6)\" y=\"\(y(v) + 4)\" text-anchor=\"end\">\(String(format: "%.2f", v))</text>\n"
        }
        for epoch in 1...Int(maxEpoch) {
            out += "<text x=\"\(x(Double(epoch)))\" y=\"\(top + plotH + 18)\" text-anchor=\"middle\">\(epoch)</text>\n"
        }
        out += "<text x=\"\(left + plotW / 2)\" y=\"\(height - 10)\" text-anchor=\"middle\">epoch</text>\n"
        let series: [(String, String, String, (EpochRecord) -> Double)] = [
            ("train loss", "#1f77b4", "", { $0.trainLoss }),
            ("train acc", "#9467bd", "6,4", { $0.trainAccuracy }),
            ("test acc", "#2ca02c", "2,3", { $0.testAccuracy }),
        ]
        for (i, (name, color, dash, value)) in series.enumerated() {
            let points = records.filter { value($0).isFinite }.map { "\(x(Double($0.epoch))),\(y(value($0)))" }
            if !points.isEmpty {
                out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" stroke-dasharray=\"\(dash)\" points=\"\(points.joined(separator: " "))\"/>\n"
            }
            let ly = top + 16 + Double(i) * 18
            out += "<line x1=\"\(left + plotW - 110)\" y1=\"\(ly)\" x2=\"\(left + plotW - 80)\" y2=\"\(ly)\" stroke=\"\(color)\" stroke-width=\"2\" stroke-dasharray=\"\(dash)\"/>"
            out += "<text x=\"\(left + plotW - 74)\" y=\"\(ly + 4)\">\(name)</text>\n"
        }
        return out + "</svg>\n"
    }

    private func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
