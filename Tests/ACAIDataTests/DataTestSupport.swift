import Foundation
import XCTest
@testable import ACAIData

/// Where the shared data lives: `$ACAI_SHARED/data` when ACAI_SHARED is set, else `../shared/data` next to
/// the package root (this file is Tests/ACAIDataTests/DataTestSupport.swift).
enum SharedData {
    struct Missing: Error, CustomStringConvertible {
        let path: String
        var description: String {
            "shared data folder \(path) is missing: these tests read the real datasets of shared/data "
                + "(set ACAI_SHARED to the folder that holds data/)"
        }
    }

    static func root() throws -> String {
        let shared: URL
        if let env = ProcessInfo.processInfo.environment["ACAI_SHARED"], !env.isEmpty {
            shared = URL(fileURLWithPath: env)
        } else {
            let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent()
            shared = packageRoot.deletingLastPathComponent().appendingPathComponent("shared")
        }
        let data = shared.appendingPathComponent("data").standardizedFileURL.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: data, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw Missing(path: data)
        }
        return data
    }

    /// `shared/data/name`, which must exist.
    static func folder(_ name: String) throws -> String {
        let path = try root() + "/" + name
        guard FileManager.default.fileExists(atPath: path) else { throw Missing(path: path) }
        return path
    }

    static func bytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }
}

/// The reference scaling x·2/255 − 1, in Float as TensorFlow computes it.
func unit(_ byte: UInt8) -> Float { Float(byte) * Float(2.0 / 255.0) - 1 }

func bigEndian32(_ b: [UInt8], _ o: Int) -> Int {
    Int(b[o]) << 24 | Int(b[o + 1]) << 16 | Int(b[o + 2]) << 8 | Int(b[o + 3])
}

/// A fresh temporary folder, removed at the end of the test.
func makeTemporaryDirectory(_ test: XCTestCase) throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("acai-data-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url.path
}

func write(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

func copyFile(_ source: String, to destination: String) throws {
    try FileManager.default.copyItem(atPath: source, toPath: destination)
}

func assertInUnitRange(_ values: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    var lo = Float.infinity, hi = -Float.infinity
    values.withUnsafeBufferPointer { p in
        for v in p {
            if v < lo { lo = v }
            if v > hi { hi = v }
        }
    }
    XCTAssertGreaterThanOrEqual(lo, -1, "\(what): minimum \(lo) below -1", file: file, line: line)
    XCTAssertLessThanOrEqual(hi, 1, "\(what): maximum \(hi) above 1", file: file, line: line)
}

/// Asserts that `body` throws a `DatasetError` matching `check`, whose description names `mentioning`.
func assertDatasetError<T>(_ body: @autoclosure () throws -> T, mentioning: [String],
                           file: StaticString = #filePath, line: UInt = #line,
                           _ check: (DatasetError) -> Bool) {
    do {
        _ = try body()
        XCTFail("expected a DatasetError naming \(mentioning), nothing was thrown", file: file, line: line)
    } catch let error as DatasetError {
        XCTAssertTrue(check(error), "unexpected error case: \(error)", file: file, line: line)
        for text in mentioning {
            XCTAssertTrue(error.description.contains(text), "\"\(error)\" does not mention \(text)", file: file, line: line)
        }
    } catch {
        XCTFail("expected a DatasetError, got \(error)", file: file, line: line)
    }
}

/// Writes MATLAB Level 5 MAT-files for tests (uncompressed, so that the reader's non-compressed path and its
/// small-data-element handling are exercised; the shared SVHN-format files are compressed).
struct MATWriter {
    enum Payload {
        case uint8([UInt8])
        case double([Double])
        /// A double-class array stored as miUINT8, as MATLAB saves integral doubles.
        case doubleAsUInt8([UInt8])
    }

    var bigEndian = false
    var elements: [[UInt8]] = []

    func u32(_ v: UInt32) -> [UInt8] {
        bigEndian ? [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)]
            : [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24)]
    }

    func element(_ type: UInt32, _ data: [UInt8], small: Bool = true) -> [UInt8] {
        if small && data.count <= 4 {
            // Small data element: byte count in the upper 16 bits, type in the lower 16 bits.
            return u32(UInt32(data.count) << 16 | type) + data + [UInt8](repeating: 0, count: 4 - data.count)
        }
        let pad = (8 - data.count % 8) % 8
        return u32(type) + u32(UInt32(data.count)) + data + [UInt8](repeating: 0, count: pad)
    }

    mutating func add(_ name: String, dims: [Int], _ payload: Payload) {
        let classID: UInt32
        let real: [UInt8]
        switch payload {
        case .uint8(let v): classID = 9; real = element(2, v)
        case .doubleAsUInt8(let v): classID = 6; real = element(2, v)
        case .double(let v):
            classID = 6
            var bytes: [UInt8] = []
            for d in v {
                let bits = d.bitPattern
                let le = (0..<8).map { UInt8(truncatingIfNeeded: bits >> (8 * UInt64($0))) }
                bytes += bigEndian ? le.reversed() : le
            }
            real = element(9, bytes)
        }
        let flags = element(6, u32(classID) + u32(0), small: false)
        let dimensions = element(5, dims.flatMap { u32(UInt32($0)) }, small: false)
        let body = flags + dimensions + element(1, Array(name.utf8)) + real
        elements.append(u32(14) + u32(UInt32(body.count)) + body)
    }

    func bytes() -> [UInt8] {
        var header = Array("MATLAB 5.0 MAT-file, written by ACAIDataTests".utf8)
        header += [UInt8](repeating: 0x20, count: 116 - header.count)
        header += [UInt8](repeating: 0, count: 8)
        header += bigEndian ? [0x01, 0x00, 0x4d, 0x49] : [0x00, 0x01, 0x49, 0x4d]
        return header + elements.flatMap { $0 }
    }
}
