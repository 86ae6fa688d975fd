import ACAI
import ACAIModels
import ACAITestSupport
import ACAITraining
import Foundation
import XCTest

/// Replicas of a model trained together in one process (`--replicas N`, a `ThreadCollective`): the data-parallel
/// step of mpirun with threads for processes.
final class ReplicaTests: XCTestCase {
    /// `DataParallelCheck` on every model with two thread replicas: each step's averaged gradients (and VQ-VAE's
    /// EMA buffers) against one model on the whole batch, from equal parameters, then free-running losses.
    func testTwoThreadReplicasComputeTheWholeBatchGradientsOfEveryModel() throws {
        for kind in ModelKind.allCases {
            var config = ModelConfig.lines32(kind)
            config.vqCodebookLog2 = 8
            let members = ThreadCollective.members(2)
            let reports = ReportBox(count: 2)
            let done = DispatchSemaphore(value: 0)
            let configCopy = config
            for member in members {
                let thread = Thread {
                    do {
                        reports.set(member.rank, .success(try DataParallelCheck.run(
                            model: kind, config: configCopy, batch: 16, steps: 4, seed: 11,
                            device: TestDevices.singleThreadedCPU(), replicas: member)))
                    } catch {
                        member.group.fail("\(error)")
                        reports.set(member.rank, .failure(error))
                    }
                    done.signal()
                }
                thread.stackSize = 16 << 20
                thread.start()
            }
            done.wait()
            done.wait()
            for rank in 0..<2 {
                let report = try reports.get(rank).get()
                XCTAssertEqual(report.gradientErrors.count, 4)
                // At this small batch a pre-activation at a leaky-ReLU kink, or a vector between two VQ codes, can
                // fall either way with last-bit differences of the shard's products, moving one step's gradient by
                // ~1e-5 of its norm; summation order alone gives ~1e-7. So: every step within 1e-4, all but one
                // within 1e-5 (the MPI tests, at batch 64, hold every step to 1e-5).
                let errors = report.gradientErrors.flatMap(\.values)
                XCTAssertLessThanOrEqual(report.maxGradientError, 1e-4, "\(kind) replica \(rank): \(report.gradientErrors)")
                XCTAssertLessThanOrEqual(errors.filter { $0 > 1e-5 }.count, 1, "\(kind) replica \(rank): \(report.gradientErrors)")
                XCTAssertLessThanOrEqual(report.maxLossDifference, 1e-3, "\(kind) replica \(rank)")
                XCTAssertTrue(report.gradientErrors.allSatisfy { $0["autoencoder gradients"] != nil }, "\(kind)")
            }
        }
    }

    func folder() throws -> String {
        let dir = NSTemporaryDirectory() + "acai-replicas-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func train(_ kind: ModelKind, replicas: Int) throws -> (Trainer, RunSummary) {
        var o = TrainOptions(model: kind, config: ModelTests.tinyConfig(kind), out: try folder())
        o.batch = 8
        o.kimg = 96.0 / 1024
        o.evalKimg = 32.0 / 1024
        o.seed = 5
        o.progressSeconds = 1e9
        let devices = (0..<replicas).map { _ in TestDevices.singleThreadedCPU() }
        let trainer = try Trainer(options: o, device: devices[0], data: TinyData(seed: 1), localReplicas: Array(devices.dropFirst()),
                                  log: { _ in }, progress: { _ in })
        return (trainer, try trainer.run())
    }

    /// The trainer with two replicas follows the trajectory of one (losses of every evaluation, final parameters),
    /// and repeats itself exactly.
    func testTrainerWithTwoReplicasFollowsOneReplicaAndRepeatsItself() throws {
        for kind in [ModelKind.acai, .vqvae] {
            let (one, _) = try train(kind, replicas: 1)
            let (two, summary) = try train(kind, replicas: 2)
            let (again, _) = try train(kind, replicas: 2)
            XCTAssertEqual(two.replicaCount, 2)
            XCTAssertEqual(summary.samples, 96)
            XCTAssertEqual(one.records.count, two.records.count)
            for (a, b) in zip(two.records, one.records) {
                for (name, value) in b.losses {
                    let mine = try XCTUnwrap(a.losses[name])
                    XCTAssertLessThanOrEqual(abs(mine - value), 1e-3 * max(abs(value), 1e-3), "\(kind) \(name) at \(b.samples)")
                }
            }
            for (p, q) in zip(two.model.parameters, one.model.parameters) {
                let x = try p.toArray(), y = try q.toArray()
                let difference = zip(x, y).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +).squareRoot()
                let norm = y.map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
                XCTAssertLessThanOrEqual(difference, 1e-4 * max(norm, 1e-6), "\(kind) \(p.name)")
            }
            XCTAssertEqual(two.records.map(\.losses), again.records.map(\.losses), "\(kind): two runs with replicas differ")
        }
    }

    func testBatchThatDoesNotDivideAmongReplicasIsRefused() throws {
        var o = TrainOptions(model: .acai, config: ModelTests.tinyConfig(.acai), out: try folder())
        o.batch = 6
        o.kimg = 1
        XCTAssertThrowsError(try Trainer(options: o, device: TestDevices.singleThreadedCPU(), data: TinyData(seed: 1),
                                         localReplicas: [TestDevices.singleThreadedCPU()], log: { _ in }, progress: { _ in })) {
            XCTAssertTrue("\($0)".contains("--batch 6 does not divide among 2 replicas"), "\($0)")
        }
    }
}

private final class ReportBox: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Result<DataParallelCheck.Report, any Error>?]
    init(count: Int) { results = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ r: Result<DataParallelCheck.Report, any Error>) { lock.withLock { results[i] = r } }
    func get(_ i: Int) throws -> Result<DataParallelCheck.Report, any Error> {
        try XCTUnwrap(lock.withLock { results[i] })
    }
}
