import ACAI
import ACAIModels
import ACAITestSupport
import ACAITraining
import Foundation
import XCTest

/// A tiny seeded dataset of 8×8 images for trainer tests, with an optional poisoned batch.
struct TinyData: TrainingData {
    let name = "tiny"
    let imageShape = [8, 8, 1]
    let classes = 10
    var counter: UInt64
    var poisonAt: UInt64?

    init(seed: UInt64, poisonAt: UInt64? = nil) {
        counter = seed
        self.poisonAt = poisonAt
    }

    mutating func next(_ count: Int) -> (images: [Float], labels: [Int]) {
        var rng = SeededGenerator(seed: counter)
        counter += 1
        var b = ModelTests.batch(count, rng: &rng)
        if let poisonAt, counter - 1 == poisonAt { b.images[0] = .nan }
        return b
    }

    var position: [UInt64] { [counter] }
    mutating func restore(position: [UInt64]) throws { counter = position[0] }

    func testSet() -> (images: [Float], labels: [Int], count: Int) {
        var rng = SeededGenerator(seed: 99)
        let b = ModelTests.batch(512, rng: &rng)
        return (b.images, b.labels, 512)
    }
}

/// Run folders, checkpoints, resume, and faults.
final class TrainerTests: XCTestCase {
    func folder() throws -> String {
        let dir = NSTemporaryDirectory() + "acai-trainer-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func options(_ kind: ModelKind, out: String, samples: Int) -> TrainOptions {
        Self.options(kind, out: out, samples: samples)
    }

    /// A tiny run: batch 8, evaluations every 16 samples, no progress lines.
    static func options(_ kind: ModelKind, out: String, samples: Int) -> TrainOptions {
        var o = TrainOptions(model: kind, config: ModelTests.tinyConfig(kind), out: out)
        o.batch = 8
        o.kimg = Double(samples) / 1024
        o.evalKimg = 16.0 / 1024
        o.seed = 5
        o.progressSeconds = 1e9
        return o
    }

    func quiet(_ o: TrainOptions, data: TinyData = TinyData(seed: 1), device: any Device = TestDevices.cpu) throws -> Trainer {
        try Trainer(options: o, device: device, data: data, log: { _ in }, progress: { _ in })
    }

    func parameterValues(_ t: Trainer) throws -> [[Float]] { try t.model.parameters.map { try $0.toArray() } }

    func testRunFolderContents() throws {
        let out = try folder()
        let summary = try quiet(options(.ae, out: out, samples: 32)).run()
        XCTAssertEqual(summary.samples, 32)
        XCTAssertEqual(summary.evaluations, 2)
        for file in ["metrics.csv", "metrics.jsonl", "interpolation.png", "slerp.png", "reconstruction.png",
                     "samples.png", "curves.png", "checkpoint.bin", "options.json", "summary.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + file), "missing \(file)")
        }
        let csv = try String(contentsOfFile: out + "/metrics.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(csv.count, 3, "header and one row per evaluation: \(csv)")
        XCTAssertTrue(csv[0].hasPrefix("step,samples,kimg"))
    }

    /// A run resumed from its checkpoint ends with exactly the parameters and metrics of one that never stopped.
    func testResumeContinuesIdentically() throws {
        let straightDir = try folder(), resumedDir = try folder()
        let straight = try quiet(options(.acai, out: straightDir, samples: 48))
        try straight.run()
        try quiet(options(.acai, out: resumedDir, samples: 24)).run()
        var resumedOptions = options(.acai, out: resumedDir, samples: 48)
        resumedOptions.resume = true
        let resumed = try quiet(resumedOptions)
        XCTAssertEqual(resumed.samples, 24)
        try resumed.run()
        XCTAssertEqual(try parameterValues(resumed), try parameterValues(straight), "parameters after resume")
        // The resumed run also evaluated where the first part stopped (24 samples); every evaluation both runs
        // made gives the same numbers.
        XCTAssertEqual(resumed.records.map(\.samples), [16, 24, 32, 48])
        XCTAssertEqual(straight.records.map(\.samples), [16, 32, 48])
        let common = resumed.records.filter { r in straight.records.contains { $0.samples == r.samples } }
        XCTAssertEqual(common.map(\.probeAccuracy), straight.records.map(\.probeAccuracy))
        XCTAssertEqual(resumed.records.first?.losses, straight.records.first?.losses)
        XCTAssertEqual(resumed.records.last?.losses, straight.records.last?.losses)
    }

    func testCheckpointRoundTripIsExact() throws {
        let out = try folder()
        let t = try quiet(options(.vqvae, out: out, samples: 16))
        try t.run()
        let (header, values) = try Checkpoint.read(out + "/checkpoint.bin")
        let fresh = try makeModel(.vqvae, config: header.config, seed: 12345, on: TestDevices.cpu)
        try Checkpoint.restore(header, values: values, into: fresh, path: out + "/checkpoint.bin")
        XCTAssertEqual(try fresh.parameters.map { try $0.toArray() }, try parameterValues(t))
        XCTAssertEqual(try fresh.buffers.map { try $0.tensor.toArray() }, try t.model.buffers.map { try $0.tensor.toArray() })
        for ((_, a), (_, b)) in zip(fresh.optimizers, t.model.optimizers) {
            XCTAssertEqual(a.step, b.step)
            XCTAssertEqual(try a.moments.map { try $0.m.toArray() + $0.v.toArray() },
                           try b.moments.map { try $0.m.toArray() + $0.v.toArray() })
        }
    }

    func testNaNStopsTrainingAndKeepsTheLastGoodCheckpoint() throws {
        let out = try folder()
        // Batches 1..; the 5th batch (after the first checkpoint at 16 samples = 2 steps) carries a NaN.
        let t = try quiet(options(.ae, out: out, samples: 160), data: TinyData(seed: 1, poisonAt: 5))
        XCTAssertThrowsError(try t.run()) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("loss_ae"), message)
            XCTAssertTrue(message.contains("nan"), message)
            XCTAssertTrue(message.contains(out + "/checkpoint.bin"), message)
        }
        let header = try Checkpoint.read(out + "/checkpoint.bin").header
        XCTAssertLessThan(header.samples, 5 * 8, "the checkpoint predates the bad batch")
        XCTAssertTrue(try Checkpoint.read(out + "/checkpoint.bin").values.allSatisfy(\.isFinite))
    }

    func testBadCheckpointsAreRefusedWithTheirPath() throws {
        let out = try folder()
        try quiet(options(.ae, out: out, samples: 16)).run()
        let path = out + "/checkpoint.bin"
        let good = try Data(contentsOf: URL(fileURLWithPath: path))
        // Truncated.
        try good.prefix(good.count - 10).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try Checkpoint.read(path)) { XCTAssertTrue("\($0)".contains(path) && "\($0)".contains("truncated"), "\($0)") }
        // A flipped value byte.
        var corrupt = good
        corrupt[corrupt.count - 3] ^= 0x40
        try corrupt.write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try Checkpoint.read(path)) { XCTAssertTrue("\($0)".contains("corrupt"), "\($0)") }
        // Not a checkpoint.
        try Data("hello".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try Checkpoint.read(path)) { XCTAssertTrue("\($0)".contains("not an acai checkpoint"), "\($0)") }
        // Missing, on resume.
        var o = options(.ae, out: try folder(), samples: 16)
        o.resume = true
        XCTAssertThrowsError(try quiet(o)) { XCTAssertTrue("\($0)".contains("no checkpoint"), "\($0)") }
    }

    func testExistingRunIsNotOverwritten() throws {
        let out = try folder()
        try quiet(options(.ae, out: out, samples: 16)).run()
        let before = try Data(contentsOf: URL(fileURLWithPath: out + "/checkpoint.bin"))
        XCTAssertThrowsError(try quiet(options(.ae, out: out, samples: 16))) { XCTAssertTrue("\($0)".contains("--resume"), "\($0)") }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/checkpoint.bin")), before)
        var other = options(.acai, out: out, samples: 16)
        other.resume = true
        XCTAssertThrowsError(try quiet(other)) { XCTAssertTrue("\($0)".contains("--model acai"), "\($0)") }
    }
}
