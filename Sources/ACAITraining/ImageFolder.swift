import ACAI
import ACAIData
import ACAIImaging
import Dispatch
import Foundation

/// A folder of the user's own PNG and JPEG images as a dataset, in torchvision's `ImageFolder` convention:
/// - images in a sub-folder `DIR/NAME/...` (at any depth below it) are labelled by NAME, the sub-folder names
///   sorted by their UTF-8 bytes giving labels 0, 1, ...; images directly in DIR are unlabelled (when there
///   are no class folders; beside class folders they are left out, with a note);
/// - `DIR/test/` (same convention inside) is the held-out split when present; otherwise a seeded
///   `testFraction` of the images (at least one) is held out;
/// - each image is centre-cropped to a square, resized to `size`×`size` with the same TF1 bicubic as CelebA
///   (in [−1, 1], clamped), and stored as 8-bit; `channels` 1 takes the luma (0.299 R + 0.587 G + 0.114 B),
///   and the default is 3 unless every image is grey (R = G = B at every pixel);
/// - files whose names do not end in .png/.jpg/.jpeg are ignored (counted); image files that do not decode
///   (truncated, corrupt, not an image) are skipped with a count and the first few paths named, or, with
///   `strict`, the first one is an error. Hidden files and folders (".name") are ignored.
/// Decoding happens once: the result is cached in a file keyed by the list of files with their sizes and
/// modification times and by the options, and read back while the key matches.
public enum ImageFolder {
    public struct Options: Sendable, Equatable {
        public var size = 32
        public var channels: Int?
        public var testFraction = 0.1
        public var strict = false
        public var seed: UInt64 = 1

        public init(size: Int = 32, channels: Int? = nil, testFraction: Double = 0.1, strict: Bool = false, seed: UInt64 = 1) {
            self.size = size; self.channels = channels; self.testFraction = testFraction; self.strict = strict; self.seed = seed
        }

        public func validate() throws {
            guard size >= 4, size <= 4096, size & (size - 1) == 0 else {
                throw TrainingError.badOption("--size must be a power of two from 4 to 4096, got \(size)")
            }
            if let channels, channels != 1 && channels != 3 {
                throw TrainingError.badOption("--channels must be 1 or 3, got \(channels)")
            }
            guard testFraction >= 0, testFraction < 1 else {
                throw TrainingError.badOption("--test-fraction must be in [0, 1), got \(testFraction)")
            }
        }
    }

    public struct Loaded: Sendable {
        public var train: Dataset
        public var test: Dataset
        /// Class folder names, label order; empty when unlabelled.
        public var classNames: [String]
        /// Image files that did not decode (all of them; the log names the first few).
        public var skipped: [String]
        public var ignored: Int
        public var fromCache: Bool
    }

    static let imageExtensions: Set<String> = ["png", "jpg", "jpeg"]

    struct Listing {
        var files: [(path: String, label: Int, test: Bool)]
        var classNames: [String]
        var ignored: Int
        var leftOut: Int
        var key: UInt64
    }

    /// Loads `directory`; `cacheFile` (nil: no cache) is read when its key matches and written otherwise.
    public static func load(directory: String, options: Options, cacheFile: String?,
                            log: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) throws -> Loaded {
        try options.validate()
        let listing = try list(directory, options: options)
        if let cacheFile, let cached = try? readCache(cacheFile, key: listing.key, name: "folder") {
            log("\(directory): \(cached.train.count) training and \(cached.test.count) test images from the cache \(cacheFile)")
            return Loaded(train: cached.train, test: cached.test, classNames: listing.classNames, skipped: cached.skipped,
                          ignored: listing.ignored, fromCache: true)
        }
        if listing.ignored > 0 { log("\(directory): ignored \(listing.ignored) files that are not .png, .jpg or .jpeg") }
        if listing.leftOut > 0 {
            log("\(directory): left out \(listing.leftOut) images directly in the folder: with class sub-folders, only their images are labelled")
        }
        let decoded = try decode(listing.files.map(\.path), size: options.size, strict: options.strict, log: log)
        let kept = decoded.indices.filter { decoded[$0] != nil }
        let skipped = decoded.indices.filter { decoded[$0] == nil }.map { listing.files[$0].path }
        if !skipped.isEmpty {
            log("\(directory): skipped \(skipped.count) unreadable image files: \(skipped.prefix(3).joined(separator: ", "))\(skipped.count > 3 ? ", ..." : "") (--strict makes this an error)")
        }
        guard !kept.isEmpty else {
            throw DatasetError.noImages(directory: directory, expected: "none of its \(listing.files.count) image files could be decoded")
        }
        let grey = kept.allSatisfy { decoded[$0]!.grey }
        let channels = options.channels ?? (grey ? 1 : 3)
        let pixelsPer = options.size * options.size * channels
        var trainIndices = kept.filter { !listing.files[$0].test }
        var testIndices = kept.filter { listing.files[$0].test }
        if !listing.files.contains(where: \.test) {
            // No test/ folder: a seeded fraction, at least one image, never all of them.
            let order = ImageData.permutation(count: trainIndices.count, seed: mixSeeds(options.seed, 0x7E57), epoch: 0)
            let held = min(max(1, Int((Double(trainIndices.count) * options.testFraction).rounded())), max(trainIndices.count - 1, 0))
            let heldSet = Set(order.prefix(held))
            testIndices = trainIndices.enumerated().filter { heldSet.contains($0.offset) }.map(\.element)
            trainIndices = trainIndices.enumerated().filter { !heldSet.contains($0.offset) }.map(\.element)
        }
        guard !trainIndices.isEmpty, !testIndices.isEmpty else {
            throw DatasetError.noImages(directory: directory, expected: "\(trainIndices.count) training and \(testIndices.count) test images decoded; both splits need at least one")
        }
        let labelled = !listing.classNames.isEmpty
        func split(_ indices: [Int], _ name: String) -> (pixels: [UInt8], labels: [Int]) {
            var pixels: [UInt8] = []
            pixels.reserveCapacity(indices.count * pixelsPer)
            for i in indices {
                let rgb = decoded[i]!.rgb
                if channels == 3 {
                    pixels += rgb
                } else {
                    for p in stride(from: 0, to: rgb.count, by: 3) {
                        let y = 0.299 * Double(rgb[p]) + 0.587 * Double(rgb[p + 1]) + 0.114 * Double(rgb[p + 2])
                        pixels.append(UInt8(min(255, max(0, y.rounded()))))
                    }
                }
            }
            return (pixels, labelled ? indices.map { listing.files[$0].label } : [])
        }
        let train = split(trainIndices, "train"), test = split(testIndices, "test")
        let classes = max(1, listing.classNames.count)
        let cache = Cache(size: options.size, channels: channels, classes: classes, trainCount: trainIndices.count,
                          testCount: testIndices.count, trainLabels: train.labels, testLabels: test.labels,
                          trainPixels: train.pixels, testPixels: test.pixels, skipped: skipped)
        if let cacheFile {
            do {
                try writeCache(cache, key: listing.key, to: cacheFile)
                log("\(directory): decoded \(kept.count) images into the cache \(cacheFile)")
            } catch {
                log("\(directory): could not write the cache \(cacheFile) (\(error)); the images will be decoded again next time")
            }
        }
        let datasets = cache.datasets(name: "folder")
        return Loaded(train: datasets.train, test: datasets.test, classNames: listing.classNames, skipped: skipped,
                      ignored: listing.ignored, fromCache: false)
    }

    // MARK: listing

    static func list(_ directory: String, options: Options) throws -> Listing {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DatasetError.missingFile(path: directory, expected: "--dataset folder needs --data-dir naming a folder of PNG/JPEG images")
        }
        guard let walker = FileManager.default.enumerator(atPath: directory) else {
            throw DatasetError.unreadable(path: directory, reason: "cannot list the folder")
        }
        var relative: [String] = []
        var ignored = 0
        while let next = walker.nextObject() as? String {
            let components = next.split(separator: "/")
            if components.contains(where: { $0.hasPrefix(".") }) {
                if let last = components.last, last.hasPrefix(".") { walker.skipDescendants() }
                continue
            }
            let full = directory + "/" + next
            var sub: ObjCBool = false
            guard FileManager.default.fileExists(atPath: full, isDirectory: &sub), !sub.boolValue else { continue }
            let ext = (next as NSString).pathExtension.lowercased()
            if imageExtensions.contains(ext) { relative.append(next) } else { ignored += 1 }
        }
        relative.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        guard !relative.isEmpty else {
            throw DatasetError.noImages(directory: directory, expected: "expected .png, .jpg or .jpeg files in it or its sub-folders")
        }
        // Classes: first path components (inside test/, the second) that are folders.
        func classOf(_ components: [Substring]) -> String? { components.count >= 2 ? String(components[0]) : nil }
        var trainClasses = Set<String>(), testClasses = Set<String>()
        let hasTest = relative.contains { $0.hasPrefix("test/") }
        for r in relative {
            let c = r.split(separator: "/")
            if hasTest, c.first == "test" { if let k = classOf(Array(c.dropFirst())) { testClasses.insert(k) } } else if let k = classOf(c) { trainClasses.insert(k) }
        }
        let names = trainClasses.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        if let stray = testClasses.subtracting(trainClasses).sorted().first {
            throw DatasetError.invalidFormat(file: directory + "/test/" + stray, reason: "a test class folder with no training folder of the same name (training classes: \(names.joined(separator: ", ")))")
        }
        let index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
        var files: [(path: String, label: Int, test: Bool)] = []
        var leftOut = 0
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ bytes: some Sequence<UInt8>) { for b in bytes { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 } }
        for r in relative {
            var c = r.split(separator: "/")
            let test = hasTest && c.first == "test"
            if test { c.removeFirst() }
            let label: Int
            if let k = classOf(c) {
                label = index[k] ?? -1
            } else if !names.isEmpty {
                leftOut += 1
                continue
            } else {
                label = -1
            }
            let path = directory + "/" + r
            let attributes = (try? FileManager.default.attributesOfItem(atPath: path)) ?? [:]
            let size = (attributes[.size] as? NSNumber)?.int64Value ?? -1
            let mtime = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            mix(r.utf8); mix([0]); mix("\(size) \(mtime)".utf8); mix([0])
            files.append((path, label, test))
        }
        guard !files.isEmpty else {
            throw DatasetError.noImages(directory: directory, expected: "expected .png, .jpg or .jpeg files in its class sub-folders")
        }
        mix("size \(options.size) channels \(options.channels ?? 0) fraction \(options.testFraction) seed \(options.seed) v1".utf8)
        return Listing(files: files, classNames: names, ignored: ignored, leftOut: leftOut, key: hash)
    }

    // MARK: decoding

    struct Decoded: Equatable { var rgb: [UInt8]; var grey: Bool; var width: Int; var height: Int }

    /// Decodes, crops and resizes every file on all cores, with a progress line about every 10%; nil for a file
    /// that does not decode (or the first such file's error, with `strict`).
    static func decode(_ files: [String], size: Int, strict: Bool, log: (String) -> Void) throws -> [Decoded?] {
        let box = DecodeBox(count: files.count)
        let workers = max(1, min(files.count, ProcessInfo.processInfo.activeProcessorCount))
        let started = Date()
        let step = max(1, files.count / 10)
        withoutActuallyEscaping(log) { log in
            let report = UncheckedBox(log)
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                var index = worker
                while index < files.count {
                    let result = Result { try decodeOne(files[index], size: size) }
                    box.set(index, result) { done in
                        if done % step == 0 || done == files.count {
                            report.value("decoding images: \(done)/\(files.count) (\(String(format: "%.0f", Date().timeIntervalSince(started)))s)")
                        }
                    }
                    index += workers
                }
            }
        }
        var out: [Decoded?] = []
        for (i, r) in box.results.enumerated() {
            switch r {
            case let .success(d): out.append(d)
            case let .failure(error):
                if strict {
                    throw DatasetError.unreadable(path: files[i], reason: "\(error) (--strict stops at the first file that does not decode)")
                }
                out.append(nil)
            case nil: out.append(nil)
            }
        }
        return out
    }

    /// One file: decode to RGB, centre-crop to a square, resize to size×size in [−1, 1], back to 8 bits.
    static func decodeOne(_ path: String, size: Int) throws -> Decoded {
        let bytes = try readFileBytes(path)
        let width: Int, height: Int, pixels: [UInt8]
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) {
            let image = try PNG.read(path, channels: 3)
            (width, height, pixels) = (image.width, image.height, image.pixels)
        } else if bytes.starts(with: [0xFF, 0xD8]) {
            let image = try JPEG.decode(bytes, dct: .fast, file: path)
            (width, height, pixels) = (image.width, image.height, image.pixels)
        } else {
            throw DatasetError.badMagic(file: path, found: bytes.prefix(4).map { String(format: "%02x", $0) }.joined(separator: " "),
                                        expected: "a PNG (89 50 4e 47) or JPEG (ff d8) signature")
        }
        guard width > 0, height > 0, pixels.count == width * height * 3 else {
            throw DatasetError.invalidFormat(file: path, reason: "decoded to \(pixels.count) bytes for \(width)x\(height) RGB")
        }
        var grey = true
        for p in stride(from: 0, to: pixels.count, by: 3) where pixels[p] != pixels[p + 1] || pixels[p] != pixels[p + 2] {
            grey = false
            break
        }
        let side = min(width, height), x0 = (width - side) / 2, y0 = (height - side) / 2
        let scale = Float(2.0 / 255.0)
        var crop = [Float](repeating: 0, count: side * side * 3)
        for y in 0..<side {
            let row = ((y + y0) * width + x0) * 3
            for k in 0..<(side * 3) { crop[y * side * 3 + k] = Float(pixels[row + k]) * scale - 1 }
        }
        let resized = side == size ? crop : Bicubic.resize(crop, height: side, width: side, channels: 3, outHeight: size, outWidth: size)
        let rgb = resized.map { UInt8(((min(1, max(-1, $0)) + 1) * 127.5).rounded()) }
        return Decoded(rgb: rgb, grey: grey, width: width, height: height)
    }

    /// One PNG or JPEG prepared as the folder dataset prepares its images (centre-crop to a square, CelebA's
    /// bicubic to `size`, 8 bits, luma for 1 channel): HWC floats in [−1, 1], and the file's own size.
    public static func loadImage(_ path: String, size: Int, channels: Int) throws -> (values: [Float], width: Int, height: Int) {
        guard channels == 1 || channels == 3 else { throw TrainingError.badOption("\(path): \(channels) channels; expected 1 or 3") }
        let decoded = try decodeOne(path, size: size)
        let scale = Float(2.0 / 255.0)
        var values: [Float] = []
        values.reserveCapacity(size * size * channels)
        for p in stride(from: 0, to: decoded.rgb.count, by: 3) {
            if channels == 3 {
                for c in 0..<3 { values.append(Float(decoded.rgb[p + c]) * scale - 1) }
            } else {
                let y = 0.299 * Double(decoded.rgb[p]) + 0.587 * Double(decoded.rgb[p + 1]) + 0.114 * Double(decoded.rgb[p + 2])
                values.append(Float(min(255, max(0, y.rounded()))) * scale - 1)
            }
        }
        return (values, decoded.width, decoded.height)
    }

    // MARK: cache

    /// The cache file: "ACAIFOLD", UInt64 LE key, UInt64 LE header length, a JSON header (sizes, counts,
    /// skipped files), Int32 LE labels of each split, then the 8-bit pixels of each split (NHWC).
    struct Cache: Codable {
        var size: Int
        var channels: Int
        var classes: Int
        var trainCount: Int
        var testCount: Int
        var trainLabels: [Int]
        var testLabels: [Int]
        var trainPixels: [UInt8]
        var testPixels: [UInt8]
        var skipped: [String]

        enum CodingKeys: String, CodingKey { case size, channels, classes, trainCount, testCount, skipped, labelled }

        init(size: Int, channels: Int, classes: Int, trainCount: Int, testCount: Int, trainLabels: [Int], testLabels: [Int],
             trainPixels: [UInt8], testPixels: [UInt8], skipped: [String]) {
            self.size = size; self.channels = channels; self.classes = classes; self.trainCount = trainCount
            self.testCount = testCount; self.trainLabels = trainLabels; self.testLabels = testLabels
            self.trainPixels = trainPixels; self.testPixels = testPixels; self.skipped = skipped
        }

        init(from decoder: any Swift.Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            size = try c.decode(Int.self, forKey: .size)
            channels = try c.decode(Int.self, forKey: .channels)
            classes = try c.decode(Int.self, forKey: .classes)
            trainCount = try c.decode(Int.self, forKey: .trainCount)
            testCount = try c.decode(Int.self, forKey: .testCount)
            skipped = try c.decode([String].self, forKey: .skipped)
            let labelled = try c.decode(Bool.self, forKey: .labelled)
            trainLabels = labelled ? [-1] : []  // marker, filled by readCache
            testLabels = labelled ? [-1] : []
            trainPixels = []; testPixels = []
        }

        func encode(to encoder: any Swift.Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(size, forKey: .size); try c.encode(channels, forKey: .channels); try c.encode(classes, forKey: .classes)
            try c.encode(trainCount, forKey: .trainCount); try c.encode(testCount, forKey: .testCount)
            try c.encode(skipped, forKey: .skipped); try c.encode(!trainLabels.isEmpty, forKey: .labelled)
        }

        func datasets(name: String) -> (train: Dataset, test: Dataset) {
            let scale = Float(2.0 / 255.0)
            let lut = (0..<256).map { Float($0) * scale - 1 }
            func make(_ pixels: [UInt8], _ labels: [Int], _ count: Int) -> Dataset {
                Dataset(name: name, images: pixels.map { lut[Int($0)] }, labels: labels, count: count,
                        height: size, width: size, channels: channels, classes: classes)
            }
            return (make(trainPixels, trainLabels, trainCount), make(testPixels, testLabels, testCount))
        }
    }

    static let magic = Array("ACAIFOLD".utf8)

    static func writeCache(_ cache: Cache, key: UInt64, to path: String) throws {
        let header = try JSONEncoder().encode(cache)
        var out = magic
        withUnsafeBytes(of: key.littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out.append(contentsOf: $0) }
        out += header
        for l in cache.trainLabels + cache.testLabels { withUnsafeBytes(of: Int32(l).littleEndian) { out.append(contentsOf: $0) } }
        out += cache.trainPixels
        out += cache.testPixels
        let folder = (path as NSString).deletingLastPathComponent
        if !folder.isEmpty { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
        try writeAtomically(Data(out), to: path)
    }

    /// The cached datasets, or nil when the file is absent or stale; throws when it is malformed.
    static func readCache(_ path: String, key: UInt64, name: String) throws -> (train: Dataset, test: Dataset, skipped: [String])? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        return try decodeCache(try readFileBytes(path), key: key, file: path, name: name)
    }

    /// The cache file's bytes as datasets; nil when they are not a cache for `key`; errors name `file`.
    public static func decodeCache(_ bytes: [UInt8], key: UInt64, file path: String,
                                   name: String) throws -> (train: Dataset, test: Dataset, skipped: [String])? {
        let reader = ByteReader(bytes: bytes, file: path)
        guard reader.count >= 24, Array(try reader.slice(0, 8)) == magic, try reader.uint64LE(at: 8) == key else { return nil }
        let length = try reader.uint64LE(at: 16)
        guard length <= UInt64(reader.count - 24) else { return nil }
        var cache: Cache
        do {
            cache = try JSONDecoder().decode(Cache.self, from: Data(try reader.slice(24, Int(length))))
        } catch {
            throw DatasetError.invalidFormat(file: path, reason: "the cache header at offset 24 is not valid JSON: \(error)")
        }
        let labelled = !cache.trainLabels.isEmpty
        let per = cache.size * cache.size * cache.channels
        // Every image takes at least one byte, so counts beyond the file's size are lies (and could overflow).
        guard cache.size > 0, cache.size <= 4096, [1, 3].contains(cache.channels), cache.trainCount > 0, cache.testCount > 0,
              cache.trainCount <= reader.count, cache.testCount <= reader.count, cache.classes >= 1 else { return nil }
        let labelCount = labelled ? cache.trainCount + cache.testCount : 0
        var offset = 24 + Int(length)
        var labels: [Int] = []
        for i in 0..<labelCount {
            let v = Int(Int32(bitPattern: try reader.uint32LE(at: offset + 4 * i)))
            guard v >= 0, v < cache.classes else { return nil }
            labels.append(v)
        }
        offset += 4 * labelCount
        let (trainBytes, o1) = cache.trainCount.multipliedReportingOverflow(by: per)
        let (testBytes, o2) = cache.testCount.multipliedReportingOverflow(by: per)
        guard !o1, !o2, trainBytes <= reader.count, testBytes <= reader.count, offset <= reader.count,
              reader.count - offset == trainBytes + testBytes else { return nil }
        cache.trainLabels = Array(labels.prefix(labelled ? cache.trainCount : 0))
        cache.testLabels = Array(labels.dropFirst(labelled ? cache.trainCount : 0))
        cache.trainPixels = Array(try reader.slice(offset, trainBytes))
        cache.testPixels = Array(try reader.slice(offset + trainBytes, testBytes))
        let d = cache.datasets(name: name)
        return (d.train, d.test, cache.skipped)
    }
}

/// Results of the decoding workers, by file index, and how many are done.
private final class DecodeBox: @unchecked Sendable {
    private(set) var results: [Result<ImageFolder.Decoded, any Error>?]
    private var done = 0
    private let lock = NSLock()

    init(count: Int) { results = Array(repeating: nil, count: count) }

    /// Stores one result and calls `progress` with the number done, under the lock (so progress lines are
    /// never written from two threads at once).
    func set(_ index: Int, _ result: Result<ImageFolder.Decoded, any Error>, progress: (Int) -> Void) {
        lock.lock()
        defer { lock.unlock() }
        results[index] = result
        done += 1
        progress(done)
    }
}

private struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
