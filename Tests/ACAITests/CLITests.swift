import ACAITestSupport
import Foundation
import XCTest

/// The `acai` executable, run as a user would: device selection without an OpenCL driver, bad input to
/// eval-lines, and eval-lines on the golden grids.
final class CLITests: XCTestCase {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// The built `acai` next to the test bundle.
    static var executable: String {
        Bundle.main.bundleURL.appendingPathComponent("acai").path
    }

    func run(_ arguments: [String], environment extra: [String: String] = [:]) throws -> Result {
        let path = Self.executable
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw SharedFolder.Missing(path: path + " (build the acai product first: swift build)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in extra { env[k] = v }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }

    /// An ICD loader pointed at an empty vendor folder sees no OpenCL platform at all.
    func noOpenCL() throws -> [String: String] {
        let dir = NSTemporaryDirectory() + "/acai-no-icd-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return ["OCL_ICD_VENDORS": dir, "ACAI_DEVICE": ""]
    }

    func testDevicesWithoutOpenCLPicksCPU() throws {
        let r = try run(["devices"], environment: try noOpenCL())
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("auto picks: cpu"), r.stdout)
        XCTAssertTrue(r.stdout.contains("OpenCL"), r.stdout)
        XCTAssertTrue(r.stdout.contains("pocl-opencl-icd"), "the listing must say which driver to install: \(r.stdout)")
    }

    func testExplicitOpenCLWithoutDriverFailsWithPackageNames() throws {
        let grid = try SharedFolder.path("golden/lines/cases/crossfade.png")
        let r = try run(["eval-lines", grid, "--device", "opencl"], environment: try noOpenCL())
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("pocl-opencl-icd"), r.stderr)
        XCTAssertTrue(r.stdout.isEmpty, "nothing may be printed as a result: \(r.stdout)")
    }

    func testAutoWithoutOpenCLSaysSoOnceAndUsesCPU() throws {
        let grid = try SharedFolder.path("golden/lines/cases/abrupt.png")
        let r = try run(["eval-lines", grid, "--device", "auto"], environment: try noOpenCL())
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stderr.split(separator: "\n").filter { $0.contains("auto device") }
        XCTAssertEqual(lines.count, 1, "exactly one log line explains the choice: \(r.stderr)")
        XCTAssertTrue(r.stdout.contains("mean distance"), r.stdout)
    }

    func testEvalLinesOnGoldenGridMatchesReference() throws {
        let grid = try SharedFolder.path("golden/lines/cases/crossfade.png")
        let r = try run(["eval-lines", grid, "--device", "cpu"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let golden = try LinesTests.golden().0.cases["crossfade"]!
        let numbers = r.stdout.split(separator: "\n").compactMap { line -> (String, Double)? in
            let parts = line.split(separator: " ")
            guard let v = parts.last.flatMap({ Double($0) }) else { return nil }
            return (parts.dropLast().joined(separator: " "), v)
        }
        let values = Dictionary(numbers, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(try XCTUnwrap(values["mean distance"]), golden.png_mean_distance, accuracy: 1e-6, r.stdout)
        XCTAssertEqual(try XCTUnwrap(values["smoothness"]), golden.png_smoothness, accuracy: 1e-3, r.stdout)
    }

    func testEvalLinesRejectsBadInput() throws {
        let dir = NSTemporaryDirectory() + "/acai-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Not a PNG.
        let text = dir + "/grid.png"
        try Data("not a png".utf8).write(to: URL(fileURLWithPath: text))
        var r = try run(["eval-lines", text, "--device", "cpu"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains(text) && r.stderr.contains("not a PNG"), r.stderr)
        // A grid whose size is not a multiple of the 32-pixel tile.
        let odd = dir + "/odd.png"
        try PNG_writeGrey(width: 40, height: 32, to: odd)
        r = try run(["eval-lines", odd, "--device", "cpu"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("40x32") && r.stderr.contains("multiple"), r.stderr)
        // --rows that contradicts the image.
        let grid = try SharedFolder.path("golden/lines/cases/abrupt.png")
        r = try run(["eval-lines", grid, "--rows", "7", "--device", "cpu"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--rows"), r.stderr)
        // A missing file.
        r = try run(["eval-lines", dir + "/absent.png", "--device", "cpu"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("absent.png"), r.stderr)
    }

    func testUnknownModelIsRejected() throws {
        let r = try run(["train", "--model", "gan", "--kimg", "1"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("gan") && r.stderr.contains("--model"), r.stderr)
    }

    /// `bench lines --jobs 2` trains its runs as child processes and builds the table from their summaries,
    /// the same table as in-process training of the same runs gives (CPU device: deterministic).
    func testBenchLinesInChildProcessesMatchesInProcess() throws {
        let dir = NSTemporaryDirectory() + "/acai-bench-jobs-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let common = ["bench", "lines", "--models", "ae,vae", "--seeds", "3", "--kimg", "0.25", "--eval-kimg", "0.25",
                      "--device", "cpu"]
        let parallel = try run(common + ["--jobs", "2", "--out", dir + "/jobs"])
        XCTAssertEqual(parallel.status, 0, parallel.stderr)
        XCTAssertTrue(parallel.stdout.contains("ae-seed3: done") && parallel.stdout.contains("vae-seed3: done"),
                      parallel.stdout)
        for name in ["ae-seed3", "vae-seed3"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/jobs/\(name)/summary.json"), name)
            let log = try String(contentsOfFile: "\(dir)/jobs/\(name).log", encoding: .utf8)
            XCTAssertTrue(log.contains("mean distance"), "\(name).log holds the run's output: \(log)")
        }
        let serial = try run(common + ["--out", dir + "/serial"])
        XCTAssertEqual(serial.status, 0, serial.stderr)
        // The rows (metrics; samples/s aside) agree.
        func rows(_ folder: String) throws -> [String] {
            try String(contentsOfFile: folder + "/table.md", encoding: .utf8).split(separator: "\n")
                .filter { $0.hasPrefix("| Baseline") || $0.hasPrefix("| VAE") }
                .map { line in
                    var cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
                    cells.remove(at: 3)  // samples/s
                    return cells.joined(separator: "|")
                }
        }
        let expected = try rows(dir + "/serial")
        XCTAssertEqual(expected.count, 2)
        XCTAssertEqual(try rows(dir + "/jobs"), expected)

        let bad = try run(common + ["--jobs", "0", "--out", dir + "/bad"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--jobs"), bad.stderr)
    }
}

import ACAIImaging

/// A grey test image of the given size with varied pixels.
func PNG_writeGrey(width: Int, height: Int, to path: String) throws {
    let pixels = (0..<(width * height)).map { UInt8(truncatingIfNeeded: $0 &* 37) }
    try PNG.write(Image8(width: width, height: height, channels: 1, pixels: pixels), to: path)
}
