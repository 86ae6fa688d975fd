import ACAIImaging
import ACAIModels
import ACAITestSupport
import ACAITraining
import Foundation
import XCTest

/// CRC-32C against RFC 3720's vectors, TFRecord framing, and a training run's event file read back record by
/// record (lengths, both CRCs, decoded Event messages against metrics.jsonl and the PNGs).
final class TensorBoardTests: XCTestCase {
    func testCRC32CMatchesRFC3720() {
        // RFC 3720 appendix B.4, and the common check value of "123456789".
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8($0) }), 0x46DD_794E)
        XCTAssertEqual(CRC32C.checksum((0..<32).reversed().map { UInt8($0) }), 0x113F_DB5C)
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        let crc: UInt32 = 0xE306_9283
        XCTAssertEqual(CRC32C.masked(Array("123456789".utf8)), ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8)
    }

    func testFramingRoundTripsAndDetectsCorruption() throws {
        let payloads: [[UInt8]] = [[], Array("hello".utf8), (0..<300).map { UInt8($0 % 251) }]
        var file: [UInt8] = []
        for p in payloads { file += TFRecord.frame(p) }
        let first = TFRecord.frame(payloads[1])
        XCTAssertEqual(Array(first[0..<8]), [5, 0, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(first.count, 8 + 4 + 5 + 4)
        XCTAssertEqual(try TFRecord.records(file, file: "mem"), payloads)
        var corrupt = file
        corrupt[16 + 12 + 2] ^= 1  // inside "hello"
        XCTAssertThrowsError(try TFRecord.records(corrupt, file: "c.tfevents")) { XCTAssertTrue("\($0)".contains("data's CRC"), "\($0)") }
        corrupt = file
        corrupt[16] ^= 1  // the second record's length
        XCTAssertThrowsError(try TFRecord.records(corrupt, file: "c.tfevents")) { XCTAssertTrue("\($0)".contains("length's CRC"), "\($0)") }
        for n in 1..<file.count where n != 16 && n != 37 {
            XCTAssertThrowsError(try TFRecord.records(Array(file.prefix(n)), file: "cut"), "prefix \(n)")
        }
    }

    func testTrainingRunWritesEventsTensorBoardCanRead() throws {
        let dir = NSTemporaryDirectory() + "acai-tb-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        var o = TrainOptions(model: .acai, config: ModelTests.tinyConfig(.acai), out: dir)
        o.batch = 8
        o.kimg = 32.0 / 1024
        o.evalKimg = 16.0 / 1024
        o.progressSeconds = 1e9
        let trainer = try Trainer(options: o, device: TestDevices.cpu, data: TinyData(seed: 1), log: { _ in }, progress: { _ in })
        try trainer.run()
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("events.out.tfevents.") }
        XCTAssertEqual(files.count, 1, "\(files)")
        let records = try TFRecord.records(try Array(Data(contentsOf: URL(fileURLWithPath: dir + "/" + files[0]))), file: files[0])
        let events = try records.map { try Tensorboard_Event(serializedBytes: $0) }
        XCTAssertEqual(events.first?.fileVersion, "brain.Event:2")
        XCTAssertEqual(trainer.records.count, 2)
        XCTAssertEqual(events.count, 1 + 2 * trainer.records.count, "file version, then scalars and images per evaluation")
        for (i, r) in trainer.records.enumerated() {
            let scalars = events[1 + 2 * i], images = events[2 + 2 * i]
            XCTAssertEqual(scalars.step, Int64(r.samples))
            var byTag: [String: Float] = [:]
            for v in scalars.summary.value { byTag[v.tag] = v.simpleValue }
            XCTAssertEqual(Set(byTag.keys), Set(r.losses.keys.map { "loss/\($0)" } + ["metric/probe_accuracy", "samples_per_second"]))
            for (k, v) in r.losses { XCTAssertEqual(byTag["loss/\(k)"], Float(v), k) }
            XCTAssertEqual(byTag["metric/probe_accuracy"], Float(r.probeAccuracy))
            XCTAssertEqual(images.step, Int64(r.samples))
            XCTAssertEqual(images.summary.value.map(\.tag), ["images/interpolation", "images/slerp", "images/reconstruction", "images/samples"])
        }
        // The last evaluation's images are the PNGs in the run folder.
        let last = events[events.count - 1].summary.value[0].image
        let png = try PNG.read(dir + "/interpolation.png", channels: 1)
        XCTAssertEqual([Int(last.width), Int(last.height), Int(last.colorspace)], [png.width, png.height, 1])
        XCTAssertEqual(last.encodedImageString, try Data(contentsOf: URL(fileURLWithPath: dir + "/interpolation.png")))
    }
}
