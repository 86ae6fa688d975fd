import Foundation

/// Collects per-op (CPU) or per-kernel (OpenCL) timings when `ACAI_PROFILE` is set:
/// `ACAI_PROFILE=1` prints a table at exit (or when `report()` is called); `ACAI_PROFILE=path.json`
/// also writes a Chrome trace (chrome://tracing, Perfetto).
public final class Profiler: @unchecked Sendable {
    public struct Record: Sendable {
        public var name: String
        /// Start time in nanoseconds (device clock for OpenCL, monotonic host clock for the CPU).
        public var startNs: UInt64
        public var durationNs: UInt64
        public var flops: Double
        public var bytes: Double

        public init(name: String, startNs: UInt64, durationNs: UInt64, flops: Double, bytes: Double) {
            self.name = name
            self.startNs = startNs
            self.durationNs = durationNs
            self.flops = flops
            self.bytes = bytes
        }
    }

    public struct Summary: Sendable {
        public var name: String
        public var launches: Int
        public var totalNs: UInt64
        public var flops: Double
        public var bytes: Double
    }

    public let deviceName: String
    public let enabled: Bool
    public let tracePath: String?
    private let lock = NSLock()
    private var records: [Record] = []

    public init(deviceName: String, setting: String? = ProcessInfo.processInfo.environment["ACAI_PROFILE"]) {
        self.deviceName = deviceName
        let value = setting ?? ""
        enabled = !(value.isEmpty || value == "0")
        tracePath = value.hasSuffix(".json") ? value : nil
        if enabled { ProfilerRegistry.shared.add(self) }
    }

    public func record(_ record: Record) {
        guard enabled else { return }
        lock.withLock { records.append(record) }
    }

    public func reset() { lock.withLock { records.removeAll() } }

    public var allRecords: [Record] { lock.withLock { records } }

    /// Totals per op or kernel name, slowest first.
    public func summaries() -> [Summary] {
        var byName: [String: Summary] = [:]
        for r in allRecords {
            var s = byName[r.name] ?? Summary(name: r.name, launches: 0, totalNs: 0, flops: 0, bytes: 0)
            s.launches += 1
            s.totalNs += r.durationNs
            s.flops += r.flops
            s.bytes += r.bytes
            byName[r.name] = s
        }
        return byName.values.sorted { $0.totalNs > $1.totalNs }
    }

    /// The per-kernel table: launches, total ms, mean µs, share of time, GFLOP/s and GB/s.
    public func table() -> String {
        let rows = summaries()
        let total = max(rows.reduce(0) { $0 + $1.totalNs }, 1)
        var out = "profile of \(deviceName): \(rows.reduce(0) { $0 + $1.launches }) launches, "
            + String(format: "%.3f ms\n", Double(total) / 1e6)
        out += "kernel".padding(toLength: 34, withPad: " ", startingAt: 0)
            + "  launches   total ms    mean us   share   GFLOP/s     GB/s\n"
        for r in rows {
            let seconds = Double(r.totalNs) / 1e9
            let gflops = r.flops > 0 && seconds > 0 ? String(format: "%9.1f", r.flops / seconds / 1e9) : "        -"
            let gbs = r.bytes > 0 && seconds > 0 ? String(format: "%8.2f", r.bytes / seconds / 1e9) : "       -"
            out += r.name.padding(toLength: 34, withPad: " ", startingAt: 0)
                + String(format: "  %8d %10.3f %10.1f %6.1f%% ", r.launches, Double(r.totalNs) / 1e6,
                         Double(r.totalNs) / 1e3 / Double(r.launches), 100 * Double(r.totalNs) / Double(total))
                + gflops + " " + gbs + "\n"
        }
        return out
    }

    /// Chrome trace events ("X" complete events, microseconds).
    public func traceEvents(pid: Int) -> [[String: Any]] {
        allRecords.map { r in
            ["name": r.name, "ph": "X", "pid": pid, "tid": deviceName, "ts": Double(r.startNs) / 1e3,
             "dur": Double(r.durationNs) / 1e3,
             "args": ["gflop": r.flops / 1e9, "mb": r.bytes / 1e6]] as [String: Any]
        }
    }
}

/// Every enabled profiler in the process, so the table and trace can be produced at exit.
public final class ProfilerRegistry: @unchecked Sendable {
    public static let shared = ProfilerRegistry()
    private let lock = NSLock()
    private var profilers: [Profiler] = []
    private var reported = false

    func add(_ profiler: Profiler) {
        let first: Bool = lock.withLock {
            profilers.append(profiler)
            return profilers.count == 1
        }
        if first { atexit { ProfilerRegistry.shared.reportAtExit() } }
    }

    private func reportAtExit() {
        let already = lock.withLock { () -> Bool in
            defer { reported = true }
            return reported
        }
        if !already { report() }
    }

    /// Prints every profiler's table to standard error and writes the Chrome trace if one was asked for.
    public func report() {
        let all = lock.withLock { profilers }
        for p in all where !p.allRecords.isEmpty {
            FileHandle.standardError.write(Data(p.table().utf8))
        }
        if let path = all.compactMap(\.tracePath).first {
            var events: [[String: Any]] = []
            for (i, p) in all.enumerated() { events += p.traceEvents(pid: i) }
            do {
                let data = try JSONSerialization.data(withJSONObject: ["traceEvents": events], options: [])
                try data.write(to: URL(fileURLWithPath: path), options: .atomic)
                FileHandle.standardError.write(Data("profile trace written to \(path)\n".utf8))
            } catch {
                FileHandle.standardError.write(Data("could not write profile trace \(path): \(error)\n".utf8))
            }
        }
    }
}

/// Monotonic host clock in nanoseconds.
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
