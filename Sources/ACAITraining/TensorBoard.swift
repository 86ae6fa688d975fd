import ACAIData
import Foundation
import SwiftProtobuf

/// Something that receives each evaluation of a run (beside metrics.csv/jsonl, which the Trainer writes).
public protocol EvaluationSink: AnyObject {
    /// `pictures`: (tag, path of a PNG just written in the run folder).
    func record(_ record: EvaluationRecord, pictures: [(tag: String, path: String)]) throws
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven, as TFRecord framing needs.
public enum CRC32C {
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    public static func checksum<S: Sequence>(_ bytes: S) -> UInt32 where S.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes { crc = table[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    /// TFRecord's masked CRC: rotate right by 15 bits and add 0xa282ead8.
    public static func masked<S: Sequence>(_ bytes: S) -> UInt32 where S.Element == UInt8 {
        let crc = checksum(bytes)
        return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }
}

/// TFRecord framing: for each record, UInt64 LE length, UInt32 LE masked CRC-32C of those 8 bytes, the data,
/// UInt32 LE masked CRC-32C of the data.
public enum TFRecord {
    public static func frame(_ data: [UInt8]) -> [UInt8] {
        var length: [UInt8] = []
        withUnsafeBytes(of: UInt64(data.count).littleEndian) { length.append(contentsOf: $0) }
        var out = length
        withUnsafeBytes(of: CRC32C.masked(length).littleEndian) { out.append(contentsOf: $0) }
        out += data
        withUnsafeBytes(of: CRC32C.masked(data).littleEndian) { out.append(contentsOf: $0) }
        return out
    }

    /// Every record of a TFRecord file's bytes, with both CRCs checked; errors name `file` and the offset.
    public static func records(_ bytes: [UInt8], file: String) throws -> [[UInt8]] {
        let reader = ByteReader(bytes: bytes, file: file)
        var out: [[UInt8]] = []
        var offset = 0
        while offset < bytes.count {
            let length = try reader.uint64LE(at: offset)
            guard try reader.uint32LE(at: offset + 8) == CRC32C.masked(try reader.slice(offset, 8)) else {
                throw DatasetError.invalidFormat(file: file, reason: "record at offset \(offset): the length's CRC does not match")
            }
            guard length <= UInt64(bytes.count - offset - 12) else {
                throw DatasetError.truncated(file: file, offset: offset + 12, expected: Int(clamping: length), available: bytes.count - offset - 12)
            }
            let data = try reader.slice(offset + 12, Int(length))
            guard try reader.uint32LE(at: offset + 12 + Int(length)) == CRC32C.masked(data) else {
                throw DatasetError.invalidFormat(file: file, reason: "record at offset \(offset): the data's CRC does not match")
            }
            out.append(Array(data))
            offset += 16 + Int(length)
        }
        return out
    }
}

/// Writes a run's evaluations as a TensorBoard event file, `events.out.tfevents.<seconds>.<host>` in the run
/// folder: a `file_version` event, then per evaluation one event (step = samples seen) with every loss
/// (`loss/NAME`), metric (`metric/mean_distance`, `metric/smoothness`, `metric/probe_accuracy`) and
/// `samples_per_second` as scalars, and one event with the pictures (`images/interpolation`, ...) as PNG
/// images. Each evaluation is flushed, so `tensorboard --logdir runs` shows a run while it trains. A resumed
/// run adds a new file beside the old one.
public final class TensorBoardWriter: EvaluationSink {
    public let path: String
    let handle: FileHandle

    public init(runFolder: String, now: Date = Date()) throws {
        var host = [CChar](repeating: 0, count: 256)
        let name = gethostname(&host, host.count - 1) == 0
            ? String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "localhost"
        path = runFolder + "/events.out.tfevents.\(Int(now.timeIntervalSince1970)).\(name.isEmpty ? "localhost" : name)"
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw TrainingError.io("cannot create the TensorBoard event file \(path)")
        }
        self.handle = handle
        var event = Tensorboard_Event()
        event.wallTime = now.timeIntervalSince1970
        event.fileVersion = "brain.Event:2"
        try write([event])
    }

    deinit { try? handle.close() }

    func write(_ events: [Tensorboard_Event]) throws {
        var bytes: [UInt8] = []
        for e in events { bytes += TFRecord.frame(try e.serializedBytes()) }
        do {
            try handle.write(contentsOf: bytes)
            try handle.synchronize()
        } catch {
            throw TrainingError.io("cannot write the TensorBoard event file \(path): \(error)")
        }
    }

    public func record(_ record: EvaluationRecord, pictures: [(tag: String, path: String)]) throws {
        let now = Date().timeIntervalSince1970
        var scalars = Tensorboard_Summary()
        func add(_ tag: String, _ value: Double?) {
            guard let value, value.isFinite else { return }
            var v = Tensorboard_Summary.Value()
            v.tag = tag
            v.simpleValue = Float(value)
            scalars.value.append(v)
        }
        for name in record.losses.keys.sorted() { add("loss/\(name)", record.losses[name]) }
        add("metric/mean_distance", record.meanDistance)
        add("metric/smoothness", record.smoothness)
        add("metric/probe_accuracy", record.probeAccuracy)
        add("samples_per_second", record.samplesPerSecond)
        var events: [Tensorboard_Event] = []
        var scalarEvent = Tensorboard_Event()
        scalarEvent.wallTime = now
        scalarEvent.step = Int64(record.samples)
        scalarEvent.summary = scalars
        events.append(scalarEvent)
        var images = Tensorboard_Summary()
        for (tag, file) in pictures {
            let bytes = try readFileBytes(file)
            let (width, height, colorspace) = try Self.pngSize(bytes, file: file)
            var image = Tensorboard_Summary.Image()
            image.width = Int32(clamping: width)
            image.height = Int32(clamping: height)
            image.colorspace = Int32(colorspace)
            image.encodedImageString = Data(bytes)
            var v = Tensorboard_Summary.Value()
            v.tag = tag
            v.image = image
            images.value.append(v)
        }
        if !images.value.isEmpty {
            var imageEvent = Tensorboard_Event()
            imageEvent.wallTime = now
            imageEvent.step = Int64(record.samples)
            imageEvent.summary = images
            events.append(imageEvent)
        }
        try write(events)
    }

    /// Width, height and TensorBoard colorspace (1 grey, 2 grey + alpha, 3 RGB, 4 RGBA) from a PNG's IHDR.
    static func pngSize(_ bytes: [UInt8], file: String) throws -> (Int, Int, Int) {
        let reader = ByteReader(bytes: bytes, file: file)
        guard Array(try reader.slice(0, 8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A],
              Array(try reader.slice(12, 4)) == Array("IHDR".utf8) else {
            throw DatasetError.badMagic(file: file, found: bytes.prefix(8).map { String(format: "%02x", $0) }.joined(), expected: "a PNG file")
        }
        let colorType = try reader.slice(25, 1).first ?? 0
        let colorspace: Int
        switch colorType {
        case 0: colorspace = 1
        case 4: colorspace = 2
        case 6: colorspace = 4
        default: colorspace = 3  // 2 RGB, 3 palette
        }
        return (Int(try reader.uint32BE(at: 16)), Int(try reader.uint32BE(at: 20)), colorspace)
    }
}
