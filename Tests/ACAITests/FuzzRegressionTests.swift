import ACAIFuzz
import ACAITestSupport
import Foundation
import XCTest

/// Replays every input kept in `Tests/Regressions/<target>/` (crashes, leaks, timeouts and OOMs that
/// tools/fuzz.sh found, and inputs written by hand for bugs fixed) through the fuzz targets' own parser entries
/// (Sources/ACAIFuzz): each must parse or throw an error that names the file; a trap fails the whole test run.
final class FuzzRegressionTests: XCTestCase {
    static let folder = SharedFolder.packageRoot + "/Tests/Regressions"

    static func inputs(_ target: FuzzTarget) -> [String] {
        let dir = folder + "/" + target.name
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { dir + "/" + $0 }
    }

    /// Every kept input of every target parses or fails clearly.
    func testReplayRegressionInputs() throws {
        var replayed = 0
        for target in FuzzTargets.all {
            for path in Self.inputs(target) {
                let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
                let started = Date()
                XCTAssertNoThrow(try target.run(bytes), "\(target.name): \(path)")
                XCTAssertLessThan(Date().timeIntervalSince(started), 10, "\(target.name): \(path) is slow")
                replayed += 1
            }
        }
        print("FuzzRegressionTests: replayed \(replayed) inputs from \(Self.folder)")
    }

    /// The kept inputs of the bugs fixed are each refused with the error that names the field at fault.
    func testFixedBugsGiveClearErrors() throws {
        let expectations: [(target: FuzzTarget, file: String, mentions: [String])] = Self.fixedBugs
        for (target, file, mentions) in expectations {
            let path = Self.folder + "/" + target.name + "/" + file
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            let error = try XCTUnwrap(try target.run(bytes), "\(path) should be refused")
            for word in mentions {
                XCTAssertTrue("\(error)".contains(word), "\(path): \(error) should mention \(word)")
            }
        }
    }

    /// Each target of FuzzTargets.all has its libFuzzer executable, and every folder of kept inputs a target.
    func testEveryTargetHasItsExecutable() throws {
        let root = SharedFolder.packageRoot
        for target in FuzzTargets.all {
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(root)/Fuzz/\(target.name)/main.swift"), target.name)
        }
        let folders = (try? FileManager.default.contentsOfDirectory(atPath: Self.folder)) ?? []
        for name in folders where !name.hasPrefix(".") {
            XCTAssertNotNil(FuzzTargets.named(name), "Tests/Regressions/\(name) has no fuzz target")
        }
        XCTAssertEqual(Set(FuzzTargets.all.map(\.name)).count, FuzzTargets.all.count)
    }

    /// A parser's error that does not name the file is itself a finding.
    func testUnclearErrorIsAFinding() {
        let target = FuzzTarget(name: "unclear", file: "named.bin") { _, _ in
            throw CocoaError(.fileReadCorruptFile)
        }
        XCTAssertThrowsError(try target.run([1, 2, 3])) { XCTAssertTrue($0 is FuzzTarget.UnclearError, "\($0)") }
        struct Named: Error, CustomStringConvertible { let description: String }
        let clear = FuzzTarget(name: "clear", file: "named.bin") { _, file in throw Named(description: "bad \(file)") }
        XCTAssertTrue(try clear.run([1]) is Named)
        XCTAssertNil(try FuzzTarget(name: "ok", file: "named.bin") { _, _ in }.run([]))
    }

    // (target, kept input, words its error must contain): one row per bug fixed (BENCHMARKS.md).
    static let fixedBugs: [(target: FuzzTarget, file: String, mentions: [String])] = [
        // Overflow of the element count wrapped to the 0 elements stored; then elementCount trapped.
        (FuzzTargets.mat, "mat-dimensions-overflow.mat", ["65536x65536x65536x65536", "offset 136", "overflow"]),
        // Shapes multiplied unchecked: a trap on overflow.
        (FuzzTargets.checkpoint, "checkpoint-shape-overflow.bin", ["tensors[0].shape", "param/x"]),
        // Negative dimensions whose product looked right were accepted.
        (FuzzTargets.checkpoint, "checkpoint-negative-shape.bin", ["tensors[0].shape", "negative"]),
        // An IHDR of 10^6 x 10^6 pixels: a 3 TB allocation.
        (FuzzTargets.png, "png-huge-dimensions.png", ["IHDR", "1000000x1000000"]),
        // A SOF of 65500 x 65500 pixels: a 12.9 GB allocation (and 4 billion grey pixels decoded).
        (FuzzTargets.jpeg, "jpeg-huge-dimensions.jpg", ["SOF", "65500x65500", "16777216 pixels"]),
        // Found by the fuzzer: a SOF of 255 x 51378 pixels over 18 KB took 2.2 s (libjpeg filled the rows
        // past the data with grey); the decoder now stops where the entropy-coded data ends.
        (FuzzTargets.jpeg, "jpeg-slow-sof-255x51378.jpg", ["fuzz.jpg", "premature end of data segment"]),
        (FuzzTargets.jpeg, "jpeg-rows-beyond-data.jpg", ["fuzz.jpg", "premature end of data segment"]),
        // The example, refused before any allocation (not a bug: the check was there).
        (FuzzTargets.idx, "idx-2e32-images-of-65536x65536.idx3-ubyte", ["4294967295x65536x65536", "offset 4"]),
        (FuzzTargets.idxGz, "idx-2e32-images-of-65536x65536.idx3-ubyte.gz", ["4294967295x65536x65536", "offset 4"]),
    ]
}
