import ACAI
import ACAIData
import ACAITestSupport
import ACAITraining
import Foundation
import XCTest

/// Data-parallel training as users start it: `mpirun -np 2 acai ...` on loopback (as root in CI, with
/// --allow-run-as-root --oversubscribe). Without mpirun these tests skip locally and fail under CI=true.
final class DistributedTests: XCTestCase {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) }

    func mpirun() throws -> String {
        guard let path = Self.mpirun else {
            if TestDevices.openCLRequired || ProcessInfo.processInfo.environment["CI"] != nil {
                throw MPIMissing()  // a failure, never a skip, where the tests must run
            }
            throw XCTSkip("mpirun not installed (tools/setup.sh installs Open MPI)")
        }
        return path
    }

    /// Open MPI's settings for one machine: any user (root in CI), more processes than cores, and copies
    /// through shared memory without the cross-memory attach that containers often forbid.
    static let mpiEnvironment = [
        "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "OMPI_MCA_btl_vader_single_copy_mechanism": "none", "OMPI_MCA_rmaps_base_oversubscribe": "1",
    ]

    func temporaryFolder() throws -> String {
        let dir = NSTemporaryDirectory() + "acai-mpi-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    /// Starts `executable arguments` (read its output with `finish`).
    func start(_ executable: String, _ arguments: [String], directory: String? = nil) throws -> (Process, Pipe, Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in Self.mpiEnvironment { environment[k] = v }
        environment["ACAI_DEVICE"] = nil
        process.environment = environment
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        return (process, out, err)
    }

    func finish(_ started: (Process, Pipe, Pipe)) -> Result {
        let (process, out, err) = started
        // Both pipes drained at once: a chatty process must not block on a full pipe.
        let errors = DataBox()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            errors.data = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errors.data, as: UTF8.self))
    }

    /// `mpirun -np N acai arguments`.
    func acai(ranks: Int, _ arguments: [String], directory: String? = nil) throws -> Result {
        finish(try start(try mpirun(), ["--allow-run-as-root", "--oversubscribe", "-np", "\(ranks)", CLITests.executable]
                         + arguments, directory: directory))
    }

    /// `acai arguments` as one process, without mpirun.
    func acai(_ arguments: [String], directory: String? = nil) throws -> Result {
        finish(try start(CLITests.executable, arguments, directory: directory))
    }

    // MARK: equal to one process

    func checkEqual(model: String, device: String, extra: [String] = []) throws {
        let r = try acai(ranks: 2, ["check-distributed", "--model", model, "--device", device, "--steps", "20"] + extra)
        XCTAssertEqual(r.status, 0, "\(r.stderr)\n\(r.stdout.prefix(2000))")
        let report = try JSONDecoder().decode(DataParallelCheck.Report.self, from: Data(r.stdout.utf8))
        XCTAssertEqual(report.processes, 2)
        XCTAssertEqual(report.gradientErrors.count, 20)
        XCTAssertEqual(report.freeRunningLosses.count, 20)
        // Every optimiser at every step, and VQ-VAE's EMA buffers.
        let names = Set(report.gradientErrors.flatMap(\.keys))
        XCTAssertTrue(names.contains("autoencoder gradients") && names.contains("probe gradients"), "\(names)")
        if model == "acai" { XCTAssertTrue(names.contains("critic gradients"), "\(names)") }
        if model == "vqvae" { XCTAssertTrue(names.isSuperset(of: ["ema_count", "ema_means", "codebook"]), "\(names)") }
        for (step, errors) in report.gradientErrors.enumerated() {
            for (name, error) in errors {
                XCTAssertLessThanOrEqual(error, 1e-5, "step \(step): \(name) differs from one process by \(error) of its norm")
            }
        }
        XCTAssertLessThanOrEqual(report.maxLossDifference, 1e-3, "free-running losses: \(report.freeRunningLosses.last ?? [:])")
        // The losses moved: the check compared training, not a constant.
        let first = report.freeRunningLosses.first?["loss_ae"]?[1] ?? 0, last = report.freeRunningLosses.last?["loss_ae"]?[1] ?? 0
        XCTAssertNotEqual(first, last)
    }

    func testACAIOnTwoProcessesEqualsOneProcessOnCPU() throws { try checkEqual(model: "acai", device: "cpu") }

    func testVQVAEOnTwoProcessesEqualsOneProcessOnCPU() throws { try checkEqual(model: "vqvae", device: "cpu") }

    func testACAIOnTwoProcessesEqualsOneProcessOnOpenCL() throws {
        _ = try TestDevices.openCL()
        try checkEqual(model: "acai", device: "opencl:0")
    }

    func testVQVAEOnTwoProcessesEqualsOneProcessOnOpenCL() throws {
        _ = try TestDevices.openCL()
        // A codebook of 2^10 codes keeps PoCL's share of the test short; the reduction is the same.
        try checkEqual(model: "vqvae", device: "opencl:0", extra: ["--vq-codebook-log2", "10"])
    }

    // MARK: runs

    func records(_ folder: String) throws -> [EvaluationRecord] {
        let text = try String(contentsOfFile: folder + "/metrics.jsonl", encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONDecoder().decode(EvaluationRecord.self, from: Data($0.utf8)) }
    }

    func testTwoProcessRunResumesWithOneProcessOnTheSameTrajectory() throws {
        let dir = try temporaryFolder()
        let common = ["train", "--model", "acai", "--device", "cpu", "--eval-kimg", "0.25", "--seed", "3"]
        let first = try acai(ranks: 2, common + ["--kimg", "0.5", "--out", dir + "/split"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stdout.contains("over 2 processes"), first.stdout)
        let resumed = try acai(common + ["--kimg", "1", "--out", dir + "/split", "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        let whole = try acai(common + ["--kimg", "1", "--out", dir + "/whole"])
        XCTAssertEqual(whole.status, 0, whole.stderr)
        let a = try records(dir + "/split"), b = try records(dir + "/whole")
        XCTAssertEqual(a.map(\.samples), b.map(\.samples))
        XCTAssertEqual(a.count, 4)
        for (x, y) in zip(a, b) {
            for (name, value) in y.losses {
                let mine = try XCTUnwrap(x.losses[name], name)
                XCTAssertLessThanOrEqual(abs(mine - value), 1e-3 * max(abs(value), 1e-3),
                                         "\(name) at \(y.samples) samples: \(mine) after 2 processes and a resume, \(value) in one process")
            }
        }
    }

    /// Open MPI starts the ranks as children of mpirun: the one whose environment says rank `rank`.
    func pid(ofRank rank: Int, under parent: Int32) -> Int32? {
        let processes = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for entry in processes {
            guard let pid = Int32(entry), let environment = FileManager.default.contents(atPath: "/proc/\(entry)/environ") else { continue }
            let variables = environment.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard variables.contains("OMPI_COMM_WORLD_RANK=\(rank)") else { continue }
            let status = (try? String(contentsOfFile: "/proc/\(entry)/status", encoding: .utf8)) ?? ""
            if status.split(separator: "\n").contains(where: { $0.hasPrefix("PPid:") && $0.hasSuffix("\t\(parent)") }) { return pid }
        }
        return nil
    }

    /// `mpirun -np 2 acai train --model ae` on the CPU device for up to 10 minutes into `run`, returned once its
    /// first checkpoint exists (or after 180 s).
    func trainUntilFirstCheckpoint(run: String, _ extra: [String]) throws -> (Process, Pipe, Pipe) {
        let started = try start(try mpirun(), ["--allow-run-as-root", "--oversubscribe", "-np", "2", CLITests.executable,
                                               "train", "--model", "ae", "--device", "cpu", "--minutes", "10", "--out", run]
                                               + extra)
        let deadline = Date().addingTimeInterval(180)
        while !FileManager.default.fileExists(atPath: run + "/checkpoint.bin"), started.0.isRunning, Date() < deadline {
            usleep(200_000)
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/checkpoint.bin"), "no checkpoint within 180 s")
        return started
    }

    func testKillingOneRankEndsTheJobAndTheCheckpointResumes() throws {
        let dir = try temporaryFolder()
        let run = dir + "/run"
        let started = try trainUntilFirstCheckpoint(run: run, ["--eval-kimg", "0.125"])
        let mpirun = started.0
        let victim = try XCTUnwrap(pid(ofRank: 1, under: mpirun.processIdentifier), "rank 1's process not found")
        kill(victim, SIGKILL)
        let killed = Date()
        let result = finish(started)
        let seconds = Date().timeIntervalSince(killed)
        XCTAssertLessThan(seconds, 60, "the job took \(seconds) s to end after rank 1 died")
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("rank 1"), "the message must name the rank that died: \(result.stderr)")
        let check = try acai(["check-run", "--run", run])
        XCTAssertEqual(check.status, 0, check.stderr + check.stdout)
        let resumed = try acai(["train", "--model", "ae", "--device", "cpu", "--minutes", "0.02", "--out", run, "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("resumed ae"), resumed.stdout)
    }

    func testSIGTERMToTheProcessesStopsThemTogetherWithACheckpointAtTheCurrentStep() throws {
        let dir = try temporaryFolder()
        let run = dir + "/run"
        let started = try trainUntilFirstCheckpoint(run: run, ["--eval-kimg", "8"])
        let mpirun = started.0
        usleep(1_500_000)  // training again, well before the next evaluation (128 steps later)
        // Both ranks get the signal, as from a batch system's job stop; they agree on a step and rank 0 saves it.
        for rank in 0..<2 {
            let pid = try XCTUnwrap(pid(ofRank: rank, under: mpirun.processIdentifier), "rank \(rank)'s process not found")
            kill(pid, SIGTERM)
        }
        let result = finish(started)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("resume with: mpirun -np 2 acai train --model ae --out \(run) --resume"), result.stderr)
        let (header, _) = try Checkpoint.read(run + "/checkpoint.bin")
        let lastEvaluation = try records(run).last?.step ?? 0
        XCTAssertGreaterThan(header.step, lastEvaluation, "the checkpoint holds the step the processes stopped at")
        XCTAssertTrue(result.stderr.contains("training stopped by SIGTERM at step \(header.step);"), result.stderr)
        let check = try acai(["check-run", "--run", run])
        XCTAssertEqual(check.status, 0, check.stderr + check.stdout)
    }

    func testARankThatStopsAnsweringTimesOutTheCollectiveInsteadOfHanging() throws {
        let dir = try temporaryFolder()
        let run = dir + "/run"
        let started = try trainUntilFirstCheckpoint(run: run, ["--eval-kimg", "0.125", "--collective-timeout", "20"])
        let mpirun = started.0
        let stuck = try XCTUnwrap(pid(ofRank: 1, under: mpirun.processIdentifier), "rank 1's process not found")
        kill(stuck, SIGSTOP)  // alive but silent: mpirun sees nothing wrong, only the collective's deadline does
        let stopped = Date()
        let result = finish(started)
        let seconds = Date().timeIntervalSince(stopped)
        XCTAssertLessThan(seconds, 60, "the job took \(seconds) s to end after rank 1 stopped answering")
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("rank 0 of 2") && result.stderr.contains("did not complete within 20 s"), result.stderr)
        let check = try acai(["check-run", "--run", run])
        XCTAssertEqual(check.status, 0, check.stderr + check.stdout)
    }

    func testOnlyRankZeroWritesFiles() throws {
        // Each rank in its own working folder (mpirun's MPMD form): the run folder is relative, so a rank
        // that wrote anything would leave it in its own folder.
        let dir = try temporaryFolder()
        let zero = dir + "/rank0", one = dir + "/rank1"
        for d in [zero, one] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        let arguments = [CLITests.executable, "train", "--model", "vqvae", "--vq-codebook-log2", "8", "--device", "cpu",
                         "--kimg", "0.25", "--eval-kimg", "0.125", "--out", "run"]
        let r = finish(try start(try mpirun(), ["--allow-run-as-root", "--oversubscribe", "-np", "1", "-wdir", zero] + arguments
                                 + [":", "-np", "1", "-wdir", one] + arguments))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: one), [], "rank 1 wrote files")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: zero), ["run"])
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: zero + "/run"))
        XCTAssertTrue(files.isSuperset(of: ["checkpoint.bin", "metrics.csv", "metrics.jsonl", "options.json", "summary.json",
                                            "interpolation.png", "curves.png"]), "\(files)")
        let summary = try RunSummary.decode(try Data(contentsOf: URL(fileURLWithPath: zero + "/run/summary.json")), path: "summary.json")
        XCTAssertEqual(summary.samples, 256)
    }

    func testSweepOverTwoRanksMakesTheTableOfOneProcess() throws {
        let dir = try temporaryFolder()
        let arguments = ["bench", "lines", "--models", "ae,acai", "--seeds", "1,2", "--kimg", "0.125", "--eval-kimg", "0.125",
                         "--device", "cpu"]
        let spread = try acai(ranks: 2, arguments + ["--out", dir + "/spread"])
        XCTAssertEqual(spread.status, 0, spread.stderr)
        let alone = try acai(arguments + ["--out", dir + "/alone"])
        XCTAssertEqual(alone.status, 0, alone.stderr)
        // Each rank trained two of the four runs.
        XCTAssertTrue(spread.stdout.contains("rank 0, ae-seed1") && spread.stdout.contains("rank 1, ae-seed2")
                      && spread.stdout.contains("rank 0, acai-seed1") && spread.stdout.contains("rank 1, acai-seed2"), spread.stdout)
        // The table's rows without the header (its device line names the thread count) and the samples/s column.
        func rows(_ folder: String) throws -> [String] {
            try String(contentsOfFile: folder + "/table.md", encoding: .utf8).split(separator: "\n")
                .filter { $0.hasPrefix("| ") && !$0.hasPrefix("| model") }
                .map { line in
                    var cells = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
                    cells.remove(at: 4)
                    return cells.joined(separator: "|")
                }
        }
        let a = try rows(dir + "/spread"), b = try rows(dir + "/alone")
        XCTAssertEqual(a.count, 2)
        XCTAssertEqual(a, b)
    }

    // MARK: refusals

    func testDistributedOutsideMPIRunSaysHowToLaunch() throws {
        let dir = try temporaryFolder()
        let r = try acai(["train", "--model", "ae", "--kimg", "1", "--distributed", "--out", dir + "/run"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("mpirun -np N acai train"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/run"))
    }

    func testBatchThatDoesNotDivideEndsTheJobWithItsReason() throws {
        let dir = try temporaryFolder()
        let odd = try acai(ranks: 2, ["train", "--model", "ae", "--kimg", "1", "--batch", "63", "--device", "cpu", "--out", dir + "/a"])
        XCTAssertNotEqual(odd.status, 0)
        XCTAssertTrue(odd.stderr.contains("--batch 63 does not divide by the 2 processes"), odd.stderr)
        // ACAI pairs mirrored samples: each process needs an even share.
        let acai = try acai(ranks: 2, ["train", "--model", "acai", "--kimg", "1", "--batch", "66", "--device", "cpu", "--out", dir + "/b"])
        XCTAssertNotEqual(acai.status, 0)
        XCTAssertTrue(acai.stderr.contains("must divide by 4"), acai.stderr)
    }
}

struct MPIMissing: Error, CustomStringConvertible {
    var description: String { "mpirun is missing: tools/setup.sh installs openmpi-bin and libopenmpi-dev" }
}

final class DataBox: @unchecked Sendable {
    var data = Data()
}

/// Sharded random draws and batches, in one process.
final class BatchShardTests: XCTestCase {
    func testShardsTogetherDrawTheSingleProcessNumbersAndPairMirroredRows() throws {
        let device = TestDevices.cpu
        let batch = 12
        let full = RandomStream(seed: 9, offset: 5)
        var single = full
        let expected = try single.tensor([batch, 3], .normal, on: device).toArray()
        var union = [Float](repeating: .nan, count: batch * 3)
        var covered: [Int] = []
        for rank in 0..<3 {
            let shard = try BatchShard(rank: rank, ranks: 3, globalBatch: batch)
            var stream = full
            stream.shard = shard
            let values = try stream.tensor([shard.localBatch, 3], .normal, on: device).toArray()
            XCTAssertEqual(stream.offset, single.offset, "every process's stream moves as the single process's")
            var local = 0
            for block in shard.blocks {
                for row in block {
                    for j in 0..<3 { union[row * 3 + j] = values[local * 3 + j] }
                    local += 1
                    covered.append(row)
                }
            }
            // Reversing the local batch pairs row i with row batch-1-i, as reversing the global batch does.
            let rows = shard.blocks.flatMap { Array($0) }
            XCTAssertEqual(Array(rows.reversed()), rows.map { batch - 1 - $0 })
            XCTAssertEqual(shard.rows(of: Array(0..<(batch * 2)), rowSize: 2), rows.flatMap { [2 * $0, 2 * $0 + 1] })
        }
        XCTAssertEqual(covered.sorted(), Array(0..<batch))
        XCTAssertEqual(union, expected)
    }

    func testDataMakesOnlyTheShardsRowsAndMovesAsFar() throws {
        let shard = try BatchShard(rank: 1, ranks: 4, globalBatch: 24)
        var whole = LinesData(seed: 4), part = LinesData(seed: 4)
        for _ in 0..<3 {
            let all = whole.next(24), mine = part.next(24, rows: shard.blocks)
            XCTAssertEqual(mine.images, shard.rows(of: all.images, rowSize: 32 * 32))
            XCTAssertEqual(mine.labels, shard.rows(of: all.labels, rowSize: 1))
            XCTAssertEqual(whole.position, part.position)
        }
        // An image dataset across an epoch boundary (7 images, batches of 24).
        let pixels = (0..<(7 * 4)).map { Float($0) / 28 }
        let train = Dataset(name: "tiny", images: pixels, labels: Array(0..<7), count: 7, height: 2, width: 2, channels: 1, classes: 7)
        var a = try ImageData(train: train, test: train, seed: 3), b = try ImageData(train: train, test: train, seed: 3)
        for _ in 0..<2 {
            let all = a.next(24), mine = b.next(24, rows: shard.blocks)
            XCTAssertEqual(mine.images, shard.rows(of: all.images, rowSize: 4))
            XCTAssertEqual(mine.labels, shard.rows(of: all.labels, rowSize: 1))
            XCTAssertEqual(a.position, b.position)
        }
    }

    func testBatchThatDoesNotDivideIsRefused() {
        XCTAssertThrowsError(try BatchShard(rank: 0, ranks: 5, globalBatch: 64))
        XCTAssertFalse(try BatchShard(rank: 0, ranks: 2, globalBatch: 66).mirrorsReversal)
    }
}
