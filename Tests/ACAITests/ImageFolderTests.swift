import ACAIData
import ACAIImaging
import ACAITestSupport
import ACAITraining
import Foundation
import XCTest

/// `--dataset folder` on images the tests write: PNG and JPEG, grey and colour, odd sizes, a corrupt file,
/// nested labels, the test/ split, the cache, and the errors.
final class ImageFolderTests: XCTestCase {
    func folder() throws -> String {
        let dir = NSTemporaryDirectory() + "acai-folder-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    static func write(_ path: String, width: Int, height: Int, channels: Int, jpeg: Bool = false,
                      pixel: (Int, Int, Int) -> UInt8) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var pixels: [UInt8] = []
        for y in 0..<height { for x in 0..<width { for c in 0..<channels { pixels.append(pixel(y, x, c)) } } }
        if jpeg {
            let bytes = try JPEG.encode(pixels: pixels, width: width, height: height, channels: channels, quality: 98)
            try Data(bytes).write(to: URL(fileURLWithPath: path))
        } else {
            try PNG.write(Image8(width: width, height: height, channels: channels, pixels: pixels), to: path)
        }
    }

    /// Random smooth-ish pictures of every kind the loader meets.
    static func writeMixedFolder(_ dir: String, rng: inout SeededGenerator) throws {
        let a = UInt8.random(in: 0...200, using: &rng)
        try write(dir + "/cat/a.png", width: 40, height: 30, channels: 3) { y, x, c in UInt8((Int(a) + 3 * x + 5 * y + 60 * c) % 256) }
        try write(dir + "/cat/nested/deeper/b.jpg", width: 17, height: 23, channels: 3, jpeg: true) { y, x, c in UInt8((7 * x + 11 * y + 90 * c) % 256) }
        try write(dir + "/dog/c.png", width: 32, height: 32, channels: 1) { y, x, _ in UInt8((x * y) % 256) }
        try write(dir + "/dog/d.JPEG", width: 50, height: 50, channels: 1, jpeg: true) { y, x, _ in UInt8((4 * x + y) % 256) }
        try write(dir + "/dog/e.png", width: 9, height: 13, channels: 3) { _, x, c in UInt8((x * 20 + c * 50) % 256) }
        // Corrupt: a PNG cut in the middle, and a text file with an image's name.
        try write(dir + "/dog/whole.png", width: 32, height: 32, channels: 3) { y, x, c in UInt8((x + y + c) % 256) }
        let whole = try Data(contentsOf: URL(fileURLWithPath: dir + "/dog/whole.png"))
        try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: dir + "/dog/truncated.png"))
        try FileManager.default.removeItem(atPath: dir + "/dog/whole.png")
        try Data("not a picture".utf8).write(to: URL(fileURLWithPath: dir + "/cat/fake.jpg"))
        try Data("notes".utf8).write(to: URL(fileURLWithPath: dir + "/README.txt"))
        try write(dir + "/.hidden/h.png", width: 8, height: 8, channels: 1) { _, _, _ in 0 }
    }

    func testMixedFolderLabelsSkipsAndCrops() throws {
        let dir = try folder()
        var rng = SeededGenerator(seed: TestRandom.seed(self))
        try Self.writeMixedFolder(dir, rng: &rng)
        let log = LogBox()
        let loaded = try ImageFolder.load(directory: dir, options: .init(size: 16, testFraction: 0.25, seed: 3), cacheFile: nil, log: log.append)
        XCTAssertEqual(loaded.classNames, ["cat", "dog"])
        XCTAssertEqual(Set(loaded.skipped.map { ($0 as NSString).lastPathComponent }), ["truncated.png", "fake.jpg"])
        XCTAssertEqual(loaded.ignored, 1, "README.txt")
        XCTAssertTrue(log.text.contains("skipped 2 unreadable image files"), log.text)
        XCTAssertTrue(log.text.contains("fake.jpg") && log.text.contains("truncated.png"), log.text)
        XCTAssertTrue(log.text.contains("decoding images: 7/7"), log.text)
        XCTAssertEqual(loaded.train.count + loaded.test.count, 5)
        XCTAssertEqual(loaded.test.count, 1, "round(5 × 0.25)")
        XCTAssertEqual(loaded.train.channels, 3, "colour images present")
        XCTAssertEqual([loaded.train.height, loaded.train.width], [16, 16])
        XCTAssertEqual(loaded.train.classes, 2)
        XCTAssertEqual((loaded.train.labels + loaded.test.labels).sorted(), [0, 0, 1, 1, 1])
        XCTAssertTrue((loaded.train.images + loaded.test.images).allSatisfy { $0 >= -1 && $0 <= 1 })

        XCTAssertThrowsError(try ImageFolder.load(directory: dir, options: .init(size: 16, strict: true), cacheFile: nil, log: { _ in })) { error in
            XCTAssertTrue("\(error)".contains("fake.jpg"), "\(error)")  // sorted: cat/fake.jpg is the first bad file
            XCTAssertTrue("\(error)".contains("--strict"), "\(error)")
        }
        let grey = try ImageFolder.load(directory: dir, options: .init(size: 8, channels: 1, testFraction: 0.25, seed: 3), cacheFile: nil, log: { _ in })
        XCTAssertEqual(grey.train.channels, 1)
        XCTAssertEqual(grey.train.images.count, grey.train.count * 64)
    }

    func testCentreCropResizeAndGreyDetection() throws {
        let dir = try folder()
        // 60 wide × 20 high: red, green, blue thirds; the centre square is the green third.
        try Self.write(dir + "/x/thirds.png", width: 60, height: 20, channels: 3) { _, x, c in c == x / 20 ? 255 : 0 }
        try Self.write(dir + "/x/thirds2.png", width: 60, height: 20, channels: 3) { _, x, c in c == x / 20 ? 255 : 0 }
        let loaded = try ImageFolder.load(directory: dir, options: .init(size: 8, testFraction: 0.5), cacheFile: nil, log: { _ in })
        for v in stride(from: 0, to: loaded.train.images.count, by: 3) {
            XCTAssertEqual(loaded.train.images[v], -1, accuracy: 1e-6)
            XCTAssertEqual(loaded.train.images[v + 1], 1, accuracy: 1e-6)
            XCTAssertEqual(loaded.train.images[v + 2], -1, accuracy: 1e-6)
        }
        // Every image grey (a grey PNG and a grey JPEG, stored as RGB by the decoder): one channel by default.
        let greyDir = try folder()
        try Self.write(greyDir + "/g.png", width: 20, height: 20, channels: 1) { y, x, _ in UInt8(x * 10 + y) }
        try Self.write(greyDir + "/h.jpg", width: 33, height: 21, channels: 1, jpeg: true) { y, x, _ in UInt8(x * 7 + y) }
        let grey = try ImageFolder.load(directory: greyDir, options: .init(size: 4), cacheFile: nil, log: { _ in })
        XCTAssertEqual(grey.train.channels, 1)
        XCTAssertTrue(grey.classNames.isEmpty)
        XCTAssertFalse(grey.train.hasLabels, "images directly in the folder are unlabelled")
        XCTAssertEqual(grey.train.classes, 1)
        // 20×20 grey → 4×4: the bicubic of the CelebA pipeline on the scaled values, back to 8 bits.
        var source: [Float] = []
        for i in 0..<400 {
            let byte = UInt8((i % 20) * 10 + i / 20)
            source.append(Float(byte) * Float(2.0 / 255.0) - 1)
        }
        let expected: [Float] = Bicubic.resize(source, height: 20, width: 20, channels: 1, outHeight: 4, outWidth: 4).map { min(1, max(-1, $0)) }
        XCTAssertEqual(grey.train.count + grey.test.count, 2)
        let images: [[Float]] = [grey.train.images, grey.test.images]
        let match = images.contains { (image: [Float]) -> Bool in
            image.count == 16 && zip(image, expected).allSatisfy { (a: Float, b: Float) -> Bool in abs(a - b) <= 1.0 / 255 + 1e-6 }
        }
        XCTAssertTrue(match, "one of the two images is g.png resized: \(expected) vs \(images)")
    }

    func testTestFolderIsTheHeldOutSplit() throws {
        let dir = try folder()
        for (i, name) in ["b", "a"].enumerated() {
            for k in 0..<3 { try Self.write(dir + "/\(name)/\(k).png", width: 12, height: 12, channels: 3) { _, x, c in UInt8(x * 10 + c * 40 + i * 5 + k) } }
            try Self.write(dir + "/test/\(name)/t.png", width: 12, height: 12, channels: 3) { _, _, c in UInt8(c * 80 + i) }
        }
        let loaded = try ImageFolder.load(directory: dir, options: .init(size: 4), cacheFile: nil, log: { _ in })
        XCTAssertEqual(loaded.classNames, ["a", "b"])
        XCTAssertEqual(loaded.train.count, 6)
        XCTAssertEqual(loaded.test.count, 2)
        XCTAssertEqual(loaded.test.labels, [0, 1], "test/a then test/b")
        XCTAssertEqual(loaded.train.labels, [0, 0, 0, 1, 1, 1])
        try Self.write(dir + "/test/zebra/t.png", width: 12, height: 12, channels: 3) { _, _, _ in 0 }
        XCTAssertThrowsError(try ImageFolder.load(directory: dir, options: .init(size: 4), cacheFile: nil, log: { _ in })) {
            XCTAssertTrue("\($0)".contains("zebra"), "\($0)")
        }
    }

    func testCacheIsReusedUntilAFileChanges() throws {
        let dir = try folder(), cacheDir = try folder()
        var rng = SeededGenerator(seed: TestRandom.seed(self))
        try Self.writeMixedFolder(dir, rng: &rng)
        let cache = cacheDir + "/run/folder-cache.bin"
        let options = ImageFolder.Options(size: 8, testFraction: 0.25, seed: 9)
        let first = try ImageFolder.load(directory: dir, options: options, cacheFile: cache, log: { _ in })
        XCTAssertFalse(first.fromCache)
        XCTAssertTrue(FileManager.default.fileExists(atPath: cache))
        let log = LogBox()
        let second = try ImageFolder.load(directory: dir, options: options, cacheFile: cache, log: log.append)
        XCTAssertTrue(second.fromCache)
        XCTAssertFalse(log.text.contains("decoding images"), "a cached folder is not decoded again")
        XCTAssertEqual(second.train.images, first.train.images)
        XCTAssertEqual(second.test.images, first.test.images)
        XCTAssertEqual(second.train.labels, first.train.labels)
        XCTAssertEqual(second.skipped, first.skipped)
        // Other options, or a changed file, decode again.
        XCTAssertFalse(try ImageFolder.load(directory: dir, options: .init(size: 4, testFraction: 0.25, seed: 9), cacheFile: cache, log: { _ in }).fromCache)
        try Self.write(dir + "/cat/a.png", width: 41, height: 30, channels: 3) { _, _, _ in 7 }
        let changed = try ImageFolder.load(directory: dir, options: options, cacheFile: cache, log: { _ in })
        XCTAssertFalse(changed.fromCache)
        // A corrupt cache is not trusted: decoded again (and rewritten).
        var bytes = try Data(contentsOf: URL(fileURLWithPath: cache))
        bytes = bytes.prefix(bytes.count - 5)
        try bytes.write(to: URL(fileURLWithPath: cache))
        XCTAssertFalse(try ImageFolder.load(directory: dir, options: options, cacheFile: cache, log: { _ in }).fromCache)
        XCTAssertTrue(try ImageFolder.load(directory: dir, options: options, cacheFile: cache, log: { _ in }).fromCache)
        // Random corruptions of the cache (key kept, so the reader parses the rest): decoded again or read, never a trap.
        let good = try Array(Data(contentsOf: URL(fileURLWithPath: cache)))
        for _ in 0..<60 {
            var copy = good
            for _ in 0..<Int.random(in: 1...3, using: &rng) { copy[Int.random(in: 16..<min(copy.count, 200), using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            try Data(copy).write(to: URL(fileURLWithPath: cache))
            let loaded = try ImageFolder.load(directory: dir, options: options, cacheFile: cache, log: { _ in })
            XCTAssertEqual(loaded.train.count + loaded.test.count, first.train.count + first.test.count)
        }
    }

    func testEmptyAndAllUnreadableFoldersAreErrorsNamingTheFolder() throws {
        let empty = try folder()
        XCTAssertThrowsError(try ImageFolder.load(directory: empty, options: .init(), cacheFile: nil, log: { _ in })) {
            XCTAssertTrue("\($0)".contains(empty), "\($0)")
        }
        let bad = try folder()
        try Data("x".utf8).write(to: URL(fileURLWithPath: bad + "/a.png"))
        try Data([0xFF, 0xD8, 0xFF]).write(to: URL(fileURLWithPath: bad + "/b.jpg"))
        XCTAssertThrowsError(try ImageFolder.load(directory: bad, options: .init(), cacheFile: nil, log: { _ in })) {
            XCTAssertTrue("\($0)".contains(bad) && "\($0)".contains("none of its 2 image files"), "\($0)")
        }
        XCTAssertThrowsError(try ImageFolder.load(directory: bad + "/missing", options: .init(), cacheFile: nil, log: { _ in })) {
            XCTAssertTrue("\($0)".contains(bad + "/missing"), "\($0)")
        }
        XCTAssertThrowsError(try ImageFolder.Options(size: 48).validate()) { XCTAssertTrue("\($0)".contains("--size")) }
        XCTAssertThrowsError(try ImageFolder.Options(channels: 2).validate()) { XCTAssertTrue("\($0)".contains("--channels")) }
    }

    /// 64×64 RGB trains end to end through the command line (S = log2(64 / 4) = 4 scales), with the cache
    /// in the run folder.
    func testCommandLineTrains64x64RGBFolder() throws {
        let data = try folder(), runs = try folder()
        var rng = SeededGenerator(seed: TestRandom.seed(self))
        for name in ["p", "q"] {
            for k in 0..<4 {
                let shift = Int.random(in: 0..<64, using: &rng)
                try Self.write(data + "/\(name)/\(k).jpg", width: 70 + k, height: 64, channels: 3, jpeg: true) { y, x, c in
                    UInt8((x * 3 + y * 2 + shift + c * 70 + (name == "q" ? 128 : 0)) % 256)
                }
            }
            for k in 0..<4 {
                try Self.write(data + "/test/\(name)/t\(k).png", width: 64, height: 80 - k, channels: 3) { y, x, c in UInt8((x + y * k + c * 50) % 256) }
            }
        }
        let out = runs + "/r"
        let result = try runACAI(["train", "--model", "ae", "--dataset", "folder", "--data-dir", data, "--size", "64",
                                         "--kimg", String(16.0 / 1024), "--eval-kimg", String(16.0 / 1024), "--batch", "4",
                                         "--depth", "4", "--latent", "4", "--device", "cpu", "--out", out])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("decoding images: 16/16"), result.stderr)
        let options = try TrainOptions.load(runFolder: out)
        XCTAssertEqual(options.config.net.width, 64)
        XCTAssertEqual(options.config.net.colors, 3)
        XCTAssertEqual(options.config.classes, 2)
        XCTAssertEqual(options.data.size, 64)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + DataSpec.folderCacheName))
        let reconstruction = try PNG.read(out + "/reconstruction.png", channels: 3)
        XCTAssertEqual([reconstruction.height, reconstruction.width], [64, 16 * 64], "8 test images: one row of 8 (original, reconstruction) pairs of 64-pixel tiles")
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json"))) as? [String: Any]
        XCTAssertEqual(summary?["samples"] as? Int, 16)

        // Two pictures of one's own: a JPEG of another size (resized, with a note) and a PNG of the model's size.
        let a = data + "/p/0.jpg", b = data + "/test/q/t0.png"
        let pair = try runACAI(["interpolate", "--run", out, "--from", a, "--to", b, "--steps", "5", "--device", "cpu", "--out", runs + "/ab"])
        XCTAssertEqual(pair.status, 0, pair.stderr)
        XCTAssertTrue(pair.stdout.contains("note: \(a): 73x64") || pair.stdout.contains("note: \(a): 70x64"), pair.stdout)
        XCTAssertTrue(pair.stdout.contains("note: \(b)"), "t0.png is 64x80: cropped too; \(pair.stdout)")
        let strip = try PNG.read(runs + "/ab.png", channels: 3)
        XCTAssertEqual([strip.width, strip.height], [5 * 128, 2 * 128], "2 rows of 5 tiles, drawn 2x")
        let gif = try GIF.read(runs + "/ab.gif")
        XCTAssertEqual(gif.frames.count, 8, "5 steps there, 3 back")
        XCTAssertEqual([gif.frames[0].width, gif.frames[0].height], [256, 128])
        // The pixel cross-fade's first tile is the first picture as the dataset prepares it.
        let prepared = try ImageFolder.loadImage(a, size: 64, channels: 3)
        var worst = 0
        for y in 0..<64 {
            for x in 0..<64 {
                for c in 0..<3 {
                    let want = Int(Grid.byte(prepared.values[(y * 64 + x) * 3 + c]))
                    worst = max(worst, abs(Int(strip.pixels[((128 + 2 * y) * strip.width + 2 * x) * 3 + c]) - want))
                }
            }
        }
        XCTAssertLessThanOrEqual(worst, 0)
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: runs + "/notes.png"))
        let bad = try runACAI(["interpolate", "--run", out, "--from", runs + "/notes.png", "--to", b, "--device", "cpu", "--out", runs + "/bad"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains(runs + "/notes.png") && bad.stderr.contains("not an image"), bad.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: runs + "/bad.png"))

        // The same run out: safetensors and .npy through the command line.
        let exported = try runACAI(["export", "--run", out, "--device", "cpu"])
        XCTAssertEqual(exported.status, 0, exported.stderr)
        XCTAssertEqual(try SafetensorsFile.read(out + "/model.safetensors").tensor("encoder/conv0/w")?.shape, [1, 1, 3, 4])
        let encoded = try runACAI(["encode", "--run", out, "--out", runs + "/enc", "--device", "cpu"])
        XCTAssertEqual(encoded.status, 0, encoded.stderr)
        XCTAssertEqual(try NumPy.read(runs + "/enc/latents.npy").shape, [8, 4 * 4 * 4])
        XCTAssertEqual(try NumPy.read(runs + "/enc/labels.npy").values, .int64([0, 0, 0, 0, 1, 1, 1, 1]))
    }
}

/// Log lines collected from any thread.
final class LogBox: @unchecked Sendable {
    private var lines: [String] = []
    private let lock = NSLock()

    func append(_ line: String) {
        lock.lock(); lines.append(line); lock.unlock()
    }

    var text: String {
        lock.lock(); defer { lock.unlock() }
        return lines.joined(separator: "\n")
    }
}

/// Runs the built `acai` (beside the test bundle) and returns its exit status and output.
func runACAI(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let path = Bundle.main.bundleURL.appendingPathComponent("acai").path
    guard FileManager.default.isExecutableFile(atPath: path) else {
        throw SharedFolder.Missing(path: path + " (build the acai product first: swift build)")
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}
