import ACAI
import ACAIModels
import ACAITraining
import ArgumentParser
import Foundation
import Logging

/// Entry point: log lines go to standard error, so standard output carries only results.
@main
enum Main {
    static func main() {
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        Acai.main()
    }
}

/// The `acai` command line: a thin layer over the ACAI library.
struct Acai: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "acai",
        abstract: "Train autoencoders on OpenCL or the CPU and measure how well they interpolate (ACAI, Berthelot et al. 2018).",
        subcommands: [Train.self, EvalLines.self, Interpolate.self, Demo.self, ReportCommand.self, ClusterCommand.self, Export.self, Encode.self, CheckRun.self, CheckDistributed.self, Devices.self, Bench.self])
}

/// Options every command that computes shares.
struct DeviceOptions: ParsableArguments {
    @Option(help: "Compute device: auto, cpu, opencl or opencl:N (default: $ACAI_DEVICE, else auto).")
    var device: String?

    func make() throws -> any Device {
        do {
            return try DeviceSelection.make(device, logger: Logger(label: "acai"))
        } catch {
            throw ValidationError("--device \(device ?? ProcessInfo.processInfo.environment["ACAI_DEVICE"] ?? "auto"): \(error)")
        }
    }

    /// The device of one process of a run: under mpirun, by its rank on the node (`DeviceSelection`).
    func make(for replicas: any Collective) throws -> any Device {
        guard replicas.localSize > 1 else { return try make() }
        do {
            return try DeviceSelection.make(device, localRank: replicas.localRank, localSize: replicas.localSize,
                                            logger: Logger(label: "acai"))
        } catch {
            throw ValidationError("rank \(replicas.rank): --device \(device ?? ProcessInfo.processInfo.environment["ACAI_DEVICE"] ?? "auto"): \(error)")
        }
    }
}

struct CheckRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-run",
        abstract: "Check that every file of a run folder is whole and parses (checkpoint, logs, summary, pictures).")

    @Option(name: .customLong("run"), help: "The run folder.") var runFolder: String

    func run() throws {
        let checked = try RunFolderCheck.verify(runFolder)
        print("\(runFolder): \(checked.joined(separator: ", ")) whole")
    }
}

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List every OpenCL platform and device and the CPU device, and say which one 'auto' picks (under mpirun: also the device of each rank).")

    @OptionGroup var device: DeviceOptions
    @OptionGroup var processes: ProcessOptions

    func run() throws {
        let replicas = try processes.join()
        guard replicas.isDistributed else {
            print(DeviceSelection.report())
            return
        }
        // Under mpirun: the node's devices once, then the device each rank picks (by its rank on its node).
        try replicas.runJob {
            let picked = try device.make(for: replicas)
            let line = "rank \(replicas.rank) of \(replicas.size) on \(replicas.nodeName) (local rank \(replicas.localRank) of "
                + "\(replicas.localSize)): \(picked.id)  \(picked.description)"
            guard let lines = try replicas.gather(Array(line.utf8), root: 0, what: "each rank's device") else { return }
            print(DeviceSelection.report())
            for bytes in lines { print(String(decoding: bytes, as: UTF8.self)) }
        }
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks that ship with the project.",
        subcommands: [BenchOps.self, BenchTrain.self, BenchLines.self, BenchSoak.self])
}

struct BenchOps: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ops",
        abstract: "Time matrix products and convolutions (forward and backward) at the lines32 model's shapes on each device, beside OpenBLAS sgemm.")

    @Option(help: "Devices to time, comma-separated (cpu, opencl:N); default: the CPU and every OpenCL device.")
    var devices: String?

    @Option(help: "Batch size of the convolutions.")
    var batch = 64

    @Option(help: "Timed repetitions per case (the median is reported).")
    var repeats = 5

    @Flag(help: "Time the convolutions with the leaky ReLU epilogue and act'(y) masks of training.")
    var leaky = false

    func run() throws {
        let specs = devices?.split(separator: ",").map(String.init) ?? DeviceSelection.allDeviceSpecs()
        var list: [any Device] = []
        for spec in specs {
            do {
                list.append(try DeviceSelection.make(spec))
            } catch {
                throw ValidationError("--devices \(spec): \(error)")
            }
        }
        let report = try OpsBenchmark.run(devices: list, batch: batch, repeats: repeats,
                                          activation: leaky ? .leakyRelu(alpha: 0.2) : .identity) { message in
            FileHandle.standardError.write(Data("\(message)\n".utf8))
        }
        for device in list { print("device \(device.id): \(device.description)") }
        print(report.markdown())
    }
}

struct BenchSoak: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Train for a long time and watch memory: RSS and device bytes must stay within 5% after the first evaluation (soak.csv, soak.png).")

    @Option(help: "Minutes of training.") var minutes: Double = 60
    @Option(name: .customLong("sample-seconds"), help: "Seconds between memory samples.") var sampleSeconds: Double = 60
    @Option(name: .customLong("eval-kimg"), help: "Evaluate every this many kimg.") var evalKimg: Double = 64
    @Option(help: "Model.") var model: ModelKind = .acai
    @Option(help: "Run folder for the soak run.") var out = "runs/soak"
    @OptionGroup var device: DeviceOptions

    func validate() throws {
        guard minutes.isFinite, minutes > 0, minutes <= 60 * 24 * 7 else { throw ValidationError("--minutes must be in (0, 10080], got \(minutes)") }
        guard sampleSeconds.isFinite, sampleSeconds > 0, sampleSeconds < minutes * 60 else {
            throw ValidationError("--sample-seconds must be positive and shorter than the run, got \(sampleSeconds)")
        }
        guard evalKimg.isFinite, evalKimg > 0 else { throw ValidationError("--eval-kimg must be positive, got \(evalKimg)") }
    }

    func run() throws {
        let r = try SoakBenchmark.run(model: model, minutes: minutes, sampleSeconds: sampleSeconds, evalKimg: evalKimg,
                                      device: try device.make(), out: out) { print($0) }
        func mib(_ v: Int?) -> String { v.map { String(format: "%.1f MiB", Double($0) / 1_048_576) } ?? "-" }
        print("soak: \(r.samples.count) samples; after the first evaluation RSS \(mib(r.baseline?.residentBytes)) grew at most "
              + "\(String(format: "%.2f", r.residentGrowth * 100))%, device live \(mib(r.baseline?.deviceLiveBytes)) at most "
              + "\(String(format: "%.2f", r.deviceGrowth * 100))% (limit \(Int(r.tolerance * 100))%); \(out)/soak.csv, \(out)/soak.png")
        if !r.passed { throw ValidationError("memory grew past \(Int(r.tolerance * 100))% during the soak") }
    }
}
