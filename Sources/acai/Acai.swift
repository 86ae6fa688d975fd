import ACAI
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
        subcommands: [Train.self, EvalLines.self, Interpolate.self, Demo.self, ReportCommand.self, ClusterCommand.self, Export.self, Encode.self, Devices.self, Bench.self])
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
}

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List every OpenCL platform and device and the CPU device, and say which one 'auto' picks.")

    func run() throws {
        print(DeviceSelection.report())
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks that ship with the project.",
        subcommands: [BenchOps.self, BenchTrain.self, BenchLines.self])
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
        let report = try OpsBenchmark.run(devices: list, batch: batch, repeats: repeats) { message in
            FileHandle.standardError.write(Data("\(message)\n".utf8))
        }
        for device in list { print("device \(device.id): \(device.description)") }
        print(report.markdown())
    }
}
