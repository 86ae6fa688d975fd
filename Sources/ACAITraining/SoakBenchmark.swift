import ACAI
import ACAIImaging
import ACAIModels
import Foundation

/// `acai bench soak`: a long training run that watches memory. The process's resident memory and the
/// device pool's live and cached bytes are sampled every `sampleSeconds`; after the first evaluation (when
/// every buffer, plan and cache a run needs exists) they must stay within `tolerance` of their values then.
/// Writes soak.csv and soak.png beside the run folder's own files.
public enum SoakBenchmark {
    public struct Sample: Sendable {
        public var seconds: Double
        public var samples: Int
        public var residentBytes: Int
        public var deviceLiveBytes: Int
        public var deviceCachedBytes: Int
    }

    public struct Result: Sendable {
        public var samples: [Sample]
        /// The first sample after the first evaluation: what later ones are compared with.
        public var baseline: Sample?
        /// Largest rise over the baseline, as a fraction of it.
        public var residentGrowth: Double
        public var deviceGrowth: Double
        public var tolerance: Double
        public var passed: Bool { residentGrowth <= tolerance && deviceGrowth <= tolerance }
    }

    public static func run(model kind: ModelKind = .acai, minutes: Double, sampleSeconds: Double, evalKimg: Double,
                           tolerance: Double = 0.05, device: any Device, out: String,
                           log: @escaping (String) -> Void) throws -> Result {
        var options = TrainOptions(model: kind, config: .lines32(kind), out: out)
        options.minutes = minutes
        options.evalKimg = evalKimg
        options.progressSeconds = sampleSeconds
        var samples: [Sample] = []
        let started = monotonicNanoseconds()
        var trainer: Trainer?
        trainer = try Trainer(options: options, device: device, data: LinesData(seed: 1), log: log, progress: { line in
            guard let t = trainer else { return }
            let memory = t.device.memory
            samples.append(Sample(seconds: Double(monotonicNanoseconds() - started) / 1e9, samples: t.samples,
                                  residentBytes: residentBytes(), deviceLiveBytes: memory.liveBytes,
                                  deviceCachedBytes: memory.cachedBytes))
            log(line)
        })
        guard let t = trainer else { return Result(samples: [], baseline: nil, residentGrowth: 0, deviceGrowth: 0, tolerance: tolerance) }
        try t.run()
        let firstEvaluation = t.records.first?.samples ?? Int.max
        let settled = samples.filter { $0.samples > firstEvaluation }
        let baseline = settled.first
        func growth(_ value: (Sample) -> Int) -> Double {
            guard let baseline, value(baseline) > 0 else { return 0 }
            return settled.map { Double(value($0) - value(baseline)) / Double(value(baseline)) }.max() ?? 0
        }
        let result = Result(samples: samples, baseline: baseline, residentGrowth: growth(\.residentBytes),
                            deviceGrowth: growth(\.deviceLiveBytes), tolerance: tolerance)
        try write(result, to: out)
        return result
    }

    static func write(_ r: Result, to out: String) throws {
        var csv = "seconds,samples,resident_bytes,device_live_bytes,device_cached_bytes\n"
        for s in r.samples {
            csv += "\(s.seconds),\(s.samples),\(s.residentBytes),\(s.deviceLiveBytes),\(s.deviceCachedBytes)\n"
        }
        try writeAtomically(Data(csv.utf8), to: out + "/soak.csv")
        let minutes = r.samples.map { $0.seconds / 60 }
        func mib(_ v: (Sample) -> Int) -> [Double] { r.samples.map { Double(v($0)) / 1_048_576 } }
        let chart = LineChart(panels: [
            .init(title: "process resident memory (MiB)", series: [.init(name: "rss", x: minutes, y: mib(\.residentBytes))]),
            .init(title: "device pool (MiB)", series: [.init(name: "live", x: minutes, y: mib(\.deviceLiveBytes)),
                                                     .init(name: "cached", x: minutes, y: mib(\.deviceCachedBytes))]),
        ], xLabel: "minutes")
        try PNG.write(chart.render(), to: out + "/soak.png")
    }
}
