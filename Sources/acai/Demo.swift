import ACAI
import ACAIModels
import ACAITraining
import ArgumentParser
import Foundation

/// The paper's Table 1 values (Mean Distance ×10⁻³, Smoothness), as recalled in ../shared/design/paper.md
/// (not verified against the PDF).
let paperTable1: [ModelKind: (distance: Double, smoothness: Double)] = [
    .ae: (6.88, 0.44), .dropout: (2.85, 0.74), .denoising: (4.21, 0.66), .vae: (1.21, 0.49),
    .aae: (3.26, 0.14), .vqvae: (5.41, 0.77), .acai: (0.24, 0.10),
]

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train ACAI and the plain autoencoder on lines with the same short budget (10-20 minutes on 2 CPU cores, evaluations included; --minutes caps each) and compare their interpolations with the paper's.")

    @Option(help: "Training samples per model, in kimg (176 kimg ≈ 180k samples: about 5 minutes for ACAI and 2 for the AE on 2 CPU cores).") var kimg: Double = 176
    @Option(help: "Optional cap on each model's training time, in minutes.") var minutes: Double?
    @Option(help: "Folder for the two runs.") var out = "runs/demo"
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @OptionGroup var device: DeviceOptions

    func run() throws {
        let dev = try device.make()
        var rows: [RunSummary] = []
        for kind in [ModelKind.acai, .ae] {
            var options = TrainOptions(model: kind, config: .lines32(kind), out: "\(out)/\(kind.rawValue)-seed\(seed)")
            options.kimg = kimg
            options.minutes = minutes
            options.seed = seed
            options.evalKimg = 16
            if FileManager.default.fileExists(atPath: options.out) {
                try FileManager.default.removeItem(atPath: options.out)  // the demo always starts afresh
            }
            rows.append(try Trainer(options: options, device: dev, data: LinesData(seed: seed)).run())
        }
        print("\nLines benchmark after a short run (the paper trained 16.8M samples; lower is better):\n")
        print(table1Markdown(rows.map { [$0] }))
        for r in rows { print("\(r.paperName) pictures: \(r.grids.joined(separator: ", "))") }
    }
}

/// A Table-1-style markdown table: one row per model, mean ± std over seeds of the last evaluation and of
/// the median of the last 20 evaluations (the paper's statistic, meaningful once a run has 20 evaluations
/// past its early plateau), beside the paper's values.
func table1Markdown(_ runsPerModel: [[RunSummary]]) -> String {
    func stats(_ v: [Double]) -> String {
        guard !v.isEmpty else { return "-" }
        let mean = v.reduce(0, +) / Double(v.count)
        let std = (v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(v.count)).squareRoot()
        return v.count > 1 ? String(format: "%.2f ± %.2f", mean, std) : String(format: "%.2f", mean)
    }
    var out = "| model | seeds | samples | samples/s | Mean Distance ×10⁻³ (last) | (median) | paper | Smoothness (last) | (median) | paper | probe acc. % |\n"
    out += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    for runs in runsPerModel {
        guard let first = runs.first, let kind = ModelKind(rawValue: first.model) else { continue }
        let paper = paperTable1[kind]
        let rate = runs.map(\.samplesPerSecond).reduce(0, +) / Double(runs.count)
        let cells = [
            stats(runs.compactMap(\.last.meanDistance).map { $0 * 1e3 }),
            stats(runs.compactMap(\.medianLast20.meanDistance).map { $0 * 1e3 }),
            paper.map { String(format: "%.2f", $0.distance) } ?? "-",
            stats(runs.compactMap(\.last.smoothness)),
            stats(runs.compactMap(\.medianLast20.smoothness)),
            paper.map { String(format: "%.2f", $0.smoothness) } ?? "-",
            stats(runs.compactMap(\.last.probeAccuracy)),
        ]
        out += "| \(first.paperName) | \(runs.count) | \(first.samples) | \(String(format: "%.0f", rate)) | " + cells.joined(separator: " | ") + " |\n"
    }
    let short = runsPerModel.flatMap { $0 }.map(\.evaluations).filter { $0 < 20 }
    if let fewest = short.min() {
        out += "\n(median): the median of the last 20 evaluations, the paper's statistic; "
            + "runs with fewer than 20 evaluations here (\(fewest == short.max() ? "\(fewest)" : "\(fewest) to \(short.max() ?? fewest)")) get the median of all of theirs, "
            + "early plateau included: read the last value.\n"
    }
    return out
}

struct BenchLines: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lines",
        abstract: "Train the chosen models at one budget on lines and write a Table-1-style markdown table (mean ± std over seeds).")

    @Option(help: "Models, comma-separated (default: all seven).") var models: String?
    @Option(help: "Training budget per run in kimg.") var kimg: Double = 64
    @Option(help: "Optional cap on each run's training time, in minutes (whichever of --kimg and --minutes ends first).") var minutes: Double?
    @Option(help: "Seeds, comma-separated.") var seeds = "1"
    @Option(name: .customLong("eval-kimg"), help: "Evaluation interval in kimg.") var evalKimg: Double = 16
    @Option(help: "Runs trained at once, each an `acai train` process logging to OUT/NAME.log (for machines with more cores than one run uses, or a GPU).") var jobs = 1
    @Option(help: "Folder for the runs and table.md.") var out = "runs/bench-lines"
    @OptionGroup var device: DeviceOptions
    @OptionGroup var processes: ProcessOptions

    func validate() throws {
        if kimg <= 0 { throw ValidationError("--kimg must be positive, got \(kimg)") }
        if let minutes, minutes <= 0 { throw ValidationError("--minutes must be positive, got \(minutes)") }
        if jobs < 1 { throw ValidationError("--jobs must be at least 1, got \(jobs)") }
    }

    func run() throws {
        let kinds: [ModelKind] = try (models?.split(separator: ",").map { name in
            guard let k = ModelKind(rawValue: String(name).trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--models: unknown model '\(name)'; expected \(ModelKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return k
        }) ?? [.ae, .dropout, .denoising, .vae, .aae, .vqvae, .acai]
        let seedList: [UInt64] = try seeds.split(separator: ",").map {
            guard let s = UInt64($0.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--seeds: '\($0)' is not a seed") }
            return s
        }
        let runs = kinds.flatMap { kind in seedList.map { (kind: kind, seed: $0) } }
        func name(_ run: (kind: ModelKind, seed: UInt64)) -> String { "\(run.kind.rawValue)-seed\(run.seed)" }
        func folder(_ run: (kind: ModelKind, seed: UInt64)) -> String { "\(out)/\(name(run))" }

        let replicas = try processes.join()
        if replicas.isDistributed, jobs > 1 {
            throw ValidationError("--jobs \(jobs) under mpirun: each of the \(replicas.size) processes trains one run at a time; start more processes instead")
        }
        try replicas.runJob {
            try sweep(runs, folder: folder, name: name, replicas: replicas, table: { dev, summaries in
                let results = kinds.map { kind in seedList.compactMap { summaries[folder((kind, $0))] } }
                let budget = minutes.map { "\(kimg) kimg or \($0) minutes" } ?? "\(kimg) kimg"
                let table = "Lines benchmark, \(budget) per run, device \(dev.id) (\(dev.description)):\n\n" + table1Markdown(results)
                try table.write(toFile: out + "/table.md", atomically: true, encoding: .utf8)
                print(table)
                print("table written to \(out)/table.md")
            })
        }
    }

    /// One run of the sweep, resumed where its folder holds a checkpoint.
    func runOptions(_ run: (kind: ModelKind, seed: UInt64), folder: String) -> TrainOptions {
        var options = TrainOptions(model: run.kind, config: .lines32(run.kind), out: folder)
        options.kimg = kimg
        options.minutes = minutes
        options.seed = run.seed
        options.evalKimg = evalKimg
        options.resume = FileManager.default.fileExists(atPath: folder + "/checkpoint.bin")
        return options
    }

    /// Trains the runs (under mpirun: run i on rank i mod N, each rank writing its own runs' folders, the
    /// summaries gathered to rank 0), then rank 0 makes the table.
    func sweep(_ runs: [(kind: ModelKind, seed: UInt64)], folder: ((kind: ModelKind, seed: UInt64)) -> String,
               name: ((kind: ModelKind, seed: UInt64)) -> String, replicas: any Collective,
               table: (any Device, [String: RunSummary]) throws -> Void) throws {
        let dev = try device.make(for: replicas)
        var summaries: [String: RunSummary] = [:]
        if replicas.isDistributed {
            for (i, run) in runs.enumerated() where i % replicas.size == replicas.rank {
                let options = runOptions(run, folder: folder(run))
                let prefix = "rank \(replicas.rank), \(name(run)): "
                let log: (String) -> Void = { Swift.print(prefix + $0) }
                summaries[folder(run)] = try Trainer(options: options, device: dev, data: LinesData(seed: run.seed),
                                                     log: log, progress: { _ in }).run()
            }
            let gathered = try replicas.gather([UInt8](try JSONEncoder().encode(summaries)), root: 0, what: "the runs' summaries")
            guard let gathered else { return }
            for (rank, bytes) in gathered.enumerated() {
                do {
                    summaries.merge(try JSONDecoder().decode([String: RunSummary].self, from: Data(bytes))) { a, _ in a }
                } catch { throw ValidationError("the summaries sent by rank \(rank) do not decode: \(error)") }
            }
        } else if jobs == 1 {
            for run in runs {
                let options = runOptions(run, folder: folder(run))
                summaries[folder(run)] = try Trainer(options: options, device: dev, data: LinesData(seed: run.seed)).run()
            }
        } else {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let failed = try trainInChildProcesses(runs.map { run in
                var arguments = ["train", "--model", run.kind.rawValue, "--dataset", "lines", "--kimg", "\(kimg)",
                                 "--eval-kimg", "\(evalKimg)", "--seed", "\(run.seed)", "--out", folder(run),
                                 "--device", dev.id]
                if let minutes { arguments += ["--minutes", "\(minutes)"] }
                if FileManager.default.fileExists(atPath: folder(run) + "/checkpoint.bin") { arguments.append("--resume") }
                return (name: name(run), arguments: arguments)
            })
            if !failed.isEmpty {
                throw ValidationError("runs failed: \(failed.joined(separator: ", ")); their logs are \(failed.map { "\(out)/\($0).log" }.joined(separator: ", "))")
            }
            for run in runs {
                let path = folder(run) + "/summary.json"
                do {
                    summaries[folder(run)] = try JSONDecoder().decode(RunSummary.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
                } catch { throw ValidationError("\(path): not a run summary (\(error))") }
            }
        }
        try table(dev, summaries)
    }

    /// Runs `acai train` child processes, `jobs` at a time, each logging to OUT/NAME.log; returns the names of
    /// those that failed.
    func trainInChildProcesses(_ runs: [(name: String, arguments: [String])]) throws -> [String] {
        let executable = Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
        let failed = LockedList()
        let slots = DispatchSemaphore(value: jobs)
        let group = DispatchGroup()
        for run in runs {
            slots.wait()
            let logPath = "\(out)/\(run.name).log"
            FileManager.default.createFile(atPath: logPath, contents: nil)
            let process = Process()
            process.executableURL = executable
            process.arguments = run.arguments
            let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
            process.standardOutput = log
            process.standardError = log
            group.enter()
            process.terminationHandler = { p in
                try? log.close()
                let ok = p.terminationStatus == 0
                if !ok { failed.append(run.name) }
                print("\(run.name): \(ok ? "done" : "FAILED (exit \(p.terminationStatus))"), log \(logPath)")
                slots.signal()
                group.leave()
            }
            do {
                try process.run()
            } catch {
                group.leave()
                group.wait()  // let the runs already started finish before reporting
                throw ValidationError("could not start \(executable.path): \(error)")
            }
            print("\(run.name): started (acai \(run.arguments.joined(separator: " ")))")
        }
        group.wait()
        return failed.items
    }
}

/// The names of failed runs, appended to from process termination handlers.
private final class LockedList: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [String] = []
    func append(_ value: String) { lock.lock(); values.append(value); lock.unlock() }
    var items: [String] { lock.lock(); defer { lock.unlock() }; return values }
}

struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Training-step throughput (ms/step, samples/s) of models on lines32 on each device (median of timed windows).")

    @Option(help: "Models, comma-separated.") var models = "acai,ae"
    @Option(help: "Devices to time, comma-separated (default: the CPU and every OpenCL device).") var devices: String?
    @Option(help: "Batch size.") var batch = 64
    @Option(help: "Timed windows (the median is reported).") var windows = 5
    @Option(name: .customLong("steps-per-window"), help: "Steps per timed window.") var stepsPerWindow = 5
    @Flag(help: "Also time every step run eagerly (the model code op by op, no recorded plan), beside the replayed plan.")
    var eager = false
    @Flag(name: .customLong("op-counts"), help: "Print the ops of each recorded step plan by kind.")
    var opCounts = false
    @OptionGroup var processes: ProcessOptions
    @OptionGroup var localReplicas: ReplicaOptions

    func validate() throws {
        guard batch >= 2, batch <= 1 << 16 else { throw ValidationError("--batch must be in 2...65536, got \(batch)") }
        guard windows >= 1, windows <= 1000 else { throw ValidationError("--windows must be in 1...1000, got \(windows)") }
        guard stepsPerWindow >= 1, stepsPerWindow <= 10_000 else {
            throw ValidationError("--steps-per-window must be in 1...10000, got \(stepsPerWindow)")
        }
    }

    func run() throws {
        let kinds: [ModelKind] = try models.split(separator: ",").map {
            guard let k = ModelKind(rawValue: String($0)) else { throw ValidationError("--models: unknown model '\($0)'") }
            return k
        }
        let specs = devices?.split(separator: ",").map(String.init) ?? DeviceSelection.allDeviceSpecs()
        let replicas = try processes.join()
        try replicas.runJob { try time(kinds, specs, replicas) }
    }

    /// Under mpirun every process times the data-parallel step (`--batch` global); rank 0 prints.
    func time(_ kinds: [ModelKind], _ specs: [String], _ replicas: any Collective) throws {
        let print: (String) -> Void = { line in if replicas.rank == 0 { Swift.print(line) } }
        let distributed = replicas.isDistributed || localReplicas.replicas > 1
        print("| model | device | step | batch | ms/step | samples/s | host ms/step | launches/step | host waits/step | plan memory |"
              + (distributed ? " processes | allreduce ms/step | allreduce bytes/step |" : ""))
        print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|" + (distributed ? "---:|---:|---:|" : ""))
        for kind in kinds {
            for spec in specs {
                let devices = try localReplicas.devices(spec, processes: replicas)
                for replay in eager ? [false, true] : [true] {
                    let r = try TrainBenchmark.run(kind, on: devices[0], batch: batch, replay: replay, windows: windows,
                                                   stepsPerWindow: stepsPerWindow, replicas: replicas,
                                                   localReplicas: Array(devices.dropFirst()))
                    let columns = distributed
                        ? " \(r.processes) | \(String(format: "%.2f", r.collectiveMillisecondsPerStep)) | \(r.allReduceBytesPerStep) |" : ""
                    print("| \(kind.rawValue) | \(r.device) | \(replay ? "plan" : "eager") | \(r.batch) | "
                          + "\(String(format: "%.1f", r.millisecondsPerStep)) | \(String(format: "%.0f", r.samplesPerSecond)) | "
                          + "\(String(format: "%.2f", r.hostMillisecondsPerStep)) | "
                          + "\(String(format: "%.0f", r.launchesPerStep)) | \(String(format: "%.1f", r.synchronizationsPerStep)) | "
                          + "\(replay ? formatBytes(r.planBytes) : "-") |" + columns)
                    if opCounts, replay {
                        print("|   ops of the plan: " + r.planOps.map { "\($0.name) \($0.count)" }.joined(separator: ", ") + " |")
                    }
                }
            }
        }
    }
}
