import ACAI
import ACAIDistributed
import ACAIModels
import ACAITraining
import ArgumentParser
import Foundation

/// How a command joins the processes of a data-parallel run: under mpirun (or with --distributed) through
/// Open MPI, otherwise as the one process of its run, without MPI.
struct ProcessOptions: ParsableArguments {
    @Flag(help: "Train data-parallel over the processes mpirun starts (implied when started by mpirun: mpirun -np N acai train ...).")
    var distributed = false
    @Option(name: .customLong("collective-timeout"),
            help: "Seconds a data-parallel process waits for the others in one collective (rank 0's evaluations included) before ending the job.")
    var collectiveTimeout: Double = 600

    func validate() throws {
        guard collectiveTimeout.isFinite, collectiveTimeout > 0, collectiveTimeout <= 86_400 else {
            throw ValidationError("--collective-timeout \(collectiveTimeout): expected seconds in (0, 86400]")
        }
        if distributed, !MPICollective.launchedByMPI {
            throw ValidationError("--distributed: this process was not started by mpirun. Launch the processes with "
                                  + "mpirun -np N acai train ... (one per GPU or per share of the cores; add --hostfile FILE for "
                                  + "several machines, and --allow-run-as-root as root); --batch is the global batch")
        }
    }

    /// This process's place in its run: MPI's world under mpirun, else a single process.
    func join() throws -> any Collective {
        guard distributed || MPICollective.launchedByMPI else { return SingleProcess() }
        let mpi: MPICollective
        do { mpi = try MPICollective(timeoutSeconds: collectiveTimeout) } catch {
            throw ValidationError("cannot join the MPI job: \(error)")
        }
        mpi.interruption = { StopRequest.signal }
        return mpi
    }
}

extension Collective {
    /// Runs a command's work as this process of its run: a failure on any process ends the whole job (the
    /// other processes would otherwise wait for it in their next collective) with its message naming the
    /// rank; success leaves MPI cleanly.
    func runJob(_ body: () throws -> Void) throws {
        guard let mpi = self as? MPICollective else { return try body() }
        do {
            try body()
            mpi.finalize()
        } catch let exit as ExitCode {
            // An agreed stop (SIGINT/SIGTERM): every process leaves with the same code, rank 0 has saved.
            mpi.finalize()
            throw exit
        } catch {
            let text = "\(error)"
            abort(text, code: 1)
        }
    }
}

struct CheckDistributed: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-distributed",
        abstract: "Under mpirun: check that data-parallel steps compute what one process computes on the whole batch (JSON report from rank 0).")

    @Option(help: "Model: \(ModelKind.allCases.map(\.rawValue).joined(separator: ", ")).") var model: ModelKind = .acai
    @Option(help: "Global batch size.") var batch = 64
    @Option(help: "Steps of each phase (recomputed from the reference's state; free-running).") var steps = 20
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @Option(name: .customLong("gradient-tolerance"), help: "Largest accepted ‖all-reduced − single-process‖ / ‖single-process‖ of a step's gradients.")
    var gradientTolerance = 1e-5
    @Option(name: .customLong("loss-tolerance"), help: "Largest accepted relative difference of the free-running losses.")
    var lossTolerance = 1e-3
    @OptionGroup var device: DeviceOptions
    @OptionGroup var processes: ProcessOptions
    @OptionGroup var hyper: HyperparameterOptions

    func validate() throws {
        guard (1...10_000).contains(steps) else { throw ValidationError("--steps \(steps): expected 1 ... 10000") }
        guard batch >= 2 else { throw ValidationError("--batch \(batch): expected at least 2") }
    }

    func run() throws {
        let replicas = try processes.join()
        try replicas.runJob {
            let config = try hyper.apply(to: ModelConfig.lines32(model))
            let report = try DataParallelCheck.run(model: model, config: config, batch: batch, steps: steps, seed: seed,
                                                   device: try device.make(for: replicas), replicas: replicas)
            let passed = report.maxGradientError <= gradientTolerance && report.maxLossDifference <= lossTolerance
            if replicas.rank == 0 {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(report), as: UTF8.self))
                FileHandle.standardError.write(Data((
                    "\(model.rawValue) on \(report.device) over \(replicas.size) processes: largest gradient difference "
                        + "\(String(format: "%.2e", report.maxGradientError)) (tolerance \(gradientTolerance)), largest loss "
                        + "difference \(String(format: "%.2e", report.maxLossDifference)) (tolerance \(lossTolerance)): "
                        + (passed ? "equal" : "NOT EQUAL") + "\n").utf8))
            }
            if !passed { throw ExitCode(1) }
        }
    }
}

/// `--replicas N`: N replicas of the model in this process, each on a single-threaded CPU device and thread of its
/// own, training shards of the batch and averaging gradients (`ReplicatedStep`): the data-parallel step of
/// mpirun within one process, which on few cores beats one replica splitting each op over them.
struct ReplicaOptions: ParsableArguments {
    @Option(help: "CPU device: train N replicas at once in this process, one per core, each on its shard of the batch (see README).")
    var replicas = 1

    func validate() throws {
        guard (1...256).contains(replicas) else { throw ValidationError("--replicas \(replicas): expected 1 ... 256") }
    }

    /// The devices of the replicas (replica 0 first) for `spec`: `replicas` CPU devices sharing the cores, or the
    /// one device of `spec` (by its rank on the node under mpirun).
    func devices(_ spec: String?, processes: any Collective) throws -> [any Device] {
        guard replicas > 1 else {
            return [try DeviceSelection.make(spec, localRank: processes.localRank, localSize: processes.localSize)]
        }
        let value = (spec ?? ProcessInfo.processInfo.environment[DeviceSelection.environmentVariable] ?? "cpu").lowercased()
        guard value == "cpu" else {
            throw ValidationError("--replicas \(replicas) trains replicas on single-threaded CPU devices; it needs --device cpu "
                                  + "(got \(value)); several GPUs train together under mpirun -np N")
        }
        guard !processes.isDistributed else {
            throw ValidationError("--replicas \(replicas) under mpirun: start one process per core instead (mpirun -np N)")
        }
        return try (0..<replicas).map { try DeviceSelection.make("cpu", localRank: $0, localSize: replicas) }
    }
}
