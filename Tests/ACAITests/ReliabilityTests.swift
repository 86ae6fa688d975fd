import ACAI
import ACAIModels
import ACAITestSupport
import ACAITraining
import Foundation
import XCTest

/// Faults around a run: bad options refused before anything is written, one process per run folder, a clean
/// stop on SIGINT that resumes exactly, copied run folders that use only themselves, non-finite checkpoints
/// refused at load, and a failed write that stops the run naming the file and keeps the last checkpoint.
final class ReliabilityTests: XCTestCase {
    enum base {
        static func options(_ kind: ModelKind, out: String, samples: Int) -> TrainOptions {
            TrainerTests.options(kind, out: out, samples: samples)
        }
    }

    func folder() throws -> String {
        let dir = NSTemporaryDirectory() + "acai-reliability-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func trainer(_ o: TrainOptions, progress: @escaping (String) -> Void = { _ in }) throws -> Trainer {
        try Trainer(options: o, device: TestDevices.cpu, data: TinyData(seed: 1), log: { _ in }, progress: progress)
    }

    func testEveryBadOptionIsRefusedByNameBeforeAnythingIsWritten() throws {
        let table: [(String, (inout TrainOptions) -> Void)] = [
            ("--batch", { $0.batch = 0 }), ("--batch", { $0.batch = -3 }), ("--batch", { $0.batch = 1 << 24 }),
            ("--batch", { $0.batch = 100_000_000 }),
            ("--kimg", { $0.kimg = 0 }), ("--kimg", { $0.kimg = -1 }), ("--kimg", { $0.kimg = .nan }),
            ("--kimg", { $0.kimg = .infinity }),
            ("--minutes", { $0.minutes = 0 }), ("--minutes", { $0.minutes = .nan }), ("--minutes", { $0.minutes = -5 }),
            ("--eval-kimg", { $0.evalKimg = 0 }), ("--eval-kimg", { $0.evalKimg = .nan }), ("--eval-kimg", { $0.evalKimg = -2 }),
            ("--lr", { $0.config.learningRate = .nan }), ("--lr", { $0.config.learningRate = 0 }),
            ("--lr", { $0.config.learningRate = -1e-4 }), ("--lr", { $0.config.learningRate = 1e9 }),
            ("--depth", { $0.config.net.depth = 0 }), ("--depth", { $0.config.net.depth = -4 }),
            ("--depth", { $0.config.net.depth = 1 << 20 }),
            ("--latent", { $0.config.net.latent = 0 }), ("--latent", { $0.config.net.latent = 1 << 30 }),
            ("--latent-width", { $0.config.net.latentWidth = 0 }), ("--latent-width", { $0.config.net.latentWidth = 64 }),
            ("--dropout-keep", { $0.config.dropoutKeep = 0 }), ("--dropout-keep", { $0.config.dropoutKeep = .nan }),
            ("--noise", { $0.config.noiseStd = -1 }), ("--noise", { $0.config.noiseStd = .nan }),
            ("--vq-decay", { $0.config.vqDecay = 1 }), ("--vq-codebook-log2", { $0.config.vqCodebookLog2 = 40 }),
            ("--adv-weight", { $0.config.advWeight = .infinity }), ("--reg", { $0.config.reg = .nan }),
            ("--aae-hidden", { $0.config.aaeHidden = [0] }), ("--adv-depth", { $0.config.advDepth = 0 }),
        ]
        for (option, mutate) in table {
            let out = try folder()
            var o = base.options(.acai, out: out, samples: 16)
            mutate(&o)
            XCTAssertThrowsError(try trainer(o), "\(option) must be refused") { error in
                XCTAssertTrue("\(error)".contains(option), "the error names \(option): \(error)")
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/options.json"), "\(option): nothing written")
        }
        var huge = base.options(.ae, out: try folder(), samples: 16)
        huge.batch = 100_000_000
        XCTAssertThrowsError(try trainer(huge)) { error in
            XCTAssertTrue("\(error)".contains("needs about"), "the memory a batch needs: \(error)")
        }
    }

    func testASecondProcessOnTheSameRunFolderIsRefused() throws {
        let out = try folder()
        var first: Trainer? = try trainer(base.options(.ae, out: out, samples: 16))
        XCTAssertThrowsError(try trainer(base.options(.ae, out: out, samples: 16))) { error in
            XCTAssertTrue("\(error)".contains("in use by another process") && "\(error)".contains("pid \(getpid())"),
                          "\(error)")
        }
        try first?.run()
        first = nil  // the lock goes with the trainer
        var again = base.options(.ae, out: out, samples: 32)
        again.resume = true
        XCTAssertEqual(try trainer(again).run().samples, 32)
    }

    /// SIGINT mid-interval: a checkpoint at that step, then a resume that ends exactly as a run never stopped.
    func testInterruptWritesACheckpointAndResumesIdentically() throws {
        let straightDir = try folder(), stoppedDir = try folder()
        var o = base.options(.acai, out: straightDir, samples: 48)
        o.progressSeconds = 1e-9
        let straight = try trainer(o)
        try straight.run()

        o.out = stoppedDir
        var lines = 0
        defer { StopRequest.clear() }
        var stopped: Trainer? = try trainer(o) { _ in
            lines += 1
            if lines == 3 { StopRequest.request(SIGINT) }  // after the third step
        }
        XCTAssertThrowsError(try stopped?.run()) { error in
            XCTAssertTrue("\(error)".contains("SIGINT") && "\(error)".contains("--resume"), "\(error)")
        }
        StopRequest.clear()
        stopped = nil  // the process ends: its lock on the folder goes
        XCTAssertEqual(try Checkpoint.read(stoppedDir + "/checkpoint.bin").header.step, 3)
        var resume = o
        resume.resume = true
        let resumed = try trainer(resume)
        try resumed.run()
        XCTAssertEqual(try resumed.model.parameters.map { try $0.toArray() },
                       try straight.model.parameters.map { try $0.toArray() })
        XCTAssertEqual(resumed.records.last?.probeAccuracy, straight.records.last?.probeAccuracy)
    }

    func testACopiedRunFolderUsesOnlyItself() throws {
        let original = try folder(), copy = try folder()
        try trainer(base.options(.ae, out: original, samples: 16)).run()
        try FileManager.default.copyItem(atPath: original, toPath: copy)
        try FileManager.default.removeItem(atPath: original)
        var o = try TrainOptions.load(runFolder: copy)
        XCTAssertEqual(o.out, copy)
        o.resume = true
        try trainer(o).drawAndScore()
        XCTAssertFalse(FileManager.default.fileExists(atPath: original), "nothing is written to the original folder")
        try FileManager.default.removeItem(atPath: copy + "/checkpoint.bin")
        XCTAssertThrowsError(try trainer(o).drawAndScore()) { error in
            XCTAssertTrue("\(error)".contains(copy + "/checkpoint.bin"), "the copy's own checkpoint is missing: \(error)")
        }
    }

    func testACheckpointWithANaNParameterIsRefusedNamingTheTensor() throws {
        let out = try folder()
        let t = try trainer(base.options(.ae, out: out, samples: 16))
        try t.run()
        let p = t.model.parameters[3]
        var values = try p.toArray()
        values[values.count / 2] = .nan
        try p.assign(values)
        try Checkpoint.write(to: out + "/checkpoint.bin", model: t.model, seed: 5, step: 2, samples: 16,
                             random: RandomStream(seed: 1), dataPosition: [1], elapsedSeconds: 1)
        let (header, read) = try Checkpoint.read(out + "/checkpoint.bin")
        let fresh = try makeModel(.ae, config: header.config, seed: 5, on: TestDevices.cpu)
        XCTAssertThrowsError(try Checkpoint.restore(header, values: read, into: fresh, path: out + "/checkpoint.bin")) { error in
            XCTAssertTrue("\(error)".contains("param/\(p.name)") && "\(error)".contains("nan"), "\(error)")
        }
    }

    /// A file-size limit makes writes fail with EFBIG: the run stops naming the file, the checkpoint before it
    /// stays intact and resumable.
    func testAFailedWriteStopsTheRunAndKeepsTheCheckpoint() throws {
        let out = try folder()
        try trainer(base.options(.ae, out: out, samples: 16)).run()
        let before = try Data(contentsOf: URL(fileURLWithPath: out + "/checkpoint.bin"))
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_FSIZE.rawValue), &limit)
        let saved = limit
        let previousHandler = signal(SIGXFSZ, SIG_IGN)
        defer {
            var restore = saved
            setrlimit(Int32(RLIMIT_FSIZE.rawValue), &restore)
            signal(SIGXFSZ, previousHandler)
        }
        limit.rlim_cur = rlim_t(before.count / 2)
        XCTAssertEqual(setrlimit(Int32(RLIMIT_FSIZE.rawValue), &limit), 0)
        var more = base.options(.ae, out: out, samples: 32)
        more.resume = true
        XCTAssertThrowsError(try trainer(more).run()) { error in
            XCTAssertTrue("\(error)".contains(out) && "\(error)".contains("too large"), "names the file and the error: \(error)")
        }
        var restore = saved
        setrlimit(Int32(RLIMIT_FSIZE.rawValue), &restore)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/checkpoint.bin")), before, "the checkpoint is intact")
        XCTAssertEqual(try trainer(more).run().samples, 32, "and resumes")
    }
}
