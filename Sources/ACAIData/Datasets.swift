#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A split of a dataset.
public enum Split: String, Sendable, CaseIterable, CustomStringConvertible {
    case train, test
    public var description: String { rawValue }
}

/// The datasets of the paper (section 7 of the design notes; reference `lib/data.py`, `create_datasets.py`),
/// plus Fashion-MNIST, read with the MNIST pipeline.
public enum DatasetName: String, Sendable, CaseIterable, CustomStringConvertible {
    case mnist32, fashion32, svhn32, cifar10, celeba32

    public var description: String { rawValue }

    /// Number of classes, as the reference's `_NCLASS` (CelebA: one dummy class).
    public var classes: Int { self == .celeba32 ? 1 : 10 }

    /// Shorthand for `Dataset.load(self, split:directory:limit:)`.
    public func load(split: Split, directory: String, limit: Int? = nil) throws -> Dataset {
        try Dataset.load(self, split: split, directory: directory, limit: limit)
    }
}

/// A dataset held in host memory: `count` images of `height`×`width`×`channels`, stored NHWC in one flat
/// array of Float scaled as the reference does, x·2/255 − 1, into [−1, 1].
public struct Dataset: Sendable {
    /// The dataset's name (a `DatasetName` raw value for the datasets read from disk).
    public let name: String
    /// NHWC pixels in [−1, 1]: image n, row y, column x, channel c at `((n·height + y)·width + x)·channels + c`.
    public let images: [Float]
    /// One label in 0..<classes per image, or empty for an unlabelled dataset (CelebA).
    public let labels: [Int]
    public let count: Int
    public let height: Int
    public let width: Int
    public let channels: Int
    public let classes: Int

    /// Builds a dataset; `images.count` must be `count·height·width·channels` and `labels` must be empty
    /// or hold `count` labels (programming errors, checked by precondition).
    public init(name: String, images: [Float], labels: [Int], count: Int, height: Int, width: Int,
                channels: Int, classes: Int) {
        precondition(count >= 0 && height > 0 && width > 0 && channels > 0, "invalid dataset shape")
        precondition(images.count == count * height * width * channels,
                     "\(name): \(images.count) floats for \(count) images of \(height)x\(width)x\(channels)")
        precondition(labels.isEmpty || labels.count == count, "\(name): \(labels.count) labels for \(count) images")
        self.name = name
        self.images = images
        self.labels = labels
        self.count = count
        self.height = height
        self.width = width
        self.channels = channels
        self.classes = classes
    }

    /// Floats per image: height·width·channels.
    public var imageSize: Int { height * width * channels }

    /// Whether every image has a label.
    public var hasLabels: Bool { !labels.isEmpty }

    /// The pixels of image `index` (NHWC order within the image).
    public func image(_ index: Int) -> ArraySlice<Float> {
        images[(index * imageSize)..<((index + 1) * imageSize)]
    }

    /// Reads one split of `name` from `directory`, the dataset's folder:
    /// - `mnist32`, `fashion32`: `{train,t10k}-{images-idx3,labels-idx1}-ubyte`, raw preferred, else `.gz`;
    ///   28×28 padded by 2 pixels of −1 to 32×32×1.
    /// - `svhn32`: `train_32x32.mat` (+ `extra_32x32.mat` when present, as the paper trains on
    ///   train + extra), `test_32x32.mat`; labels y − 1 as the reference (digits 1–9 → 0–8, y = 10 (digit 0) → 9).
    /// - `cifar10`: `data_batch_1.bin` … `data_batch_5.bin` (those that exist, at least one), `test_batch.bin`,
    ///   in `directory` or in its `cifar-10-batches-bin/` subfolder.
    /// - `celeba32`: all `*.jpg` of `directory/img_align_celeba/` (or of `directory` itself), sorted by name;
    ///   both splits are the same images, as the reference; no labels, 1 class.
    /// `limit` keeps only the first `limit` images (all when nil). Image counts come from the files.
    public static func load(_ name: DatasetName, split: Split, directory: String, limit: Int? = nil) throws -> Dataset {
        switch name {
        case .mnist32, .fashion32:
            return try IDX.loadMNIST32(name: name.rawValue, split: split, directory: directory, limit: limit)
        case .svhn32:
            return try SVHN.load(split: split, directory: directory, limit: limit)
        case .cifar10:
            return try CIFAR10.load(split: split, directory: directory, limit: limit)
        case .celeba32:
            return try CelebA.load(split: split, directory: directory, limit: limit)
        }
    }
}

/// The reference's scaling `tf.cast(x, tf.float32) * (2.0 / 255) - 1.0` for every byte value, computed in
/// Float exactly as TensorFlow does (the constant is rounded to Float once, then multiply, then subtract).
let byteToUnit: [Float] = {
    let scale = Float(2.0 / 255.0)
    return (0..<256).map { Float($0) * scale - 1 }
}()

// MARK: - File helpers

/// The whole file at `path` as bytes; errors (`DatasetError`) name the file.
public func readFileBytes(_ path: String) throws -> [UInt8] { try FileIO.readAll(path) }

enum FileIO {
    /// `directory/name` without doubling the separator.
    static func join(_ directory: String, _ name: String) -> String {
        if directory.isEmpty { return name }
        return directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    static func isRegularFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Names of the entries of a folder (not `.`/`..`), unsorted.
    static func contents(ofDirectory path: String) throws -> [String] {
        guard let dir = opendir(path) else {
            throw DatasetError.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// The whole file as bytes, read with POSIX calls straight into the array (no intermediate copy).
    static func readAll(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT { throw DatasetError.missingFile(path: path, expected: "file not found") }
            throw DatasetError.unreadable(path: path, reason: String(cString: strerror(code)))
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw DatasetError.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw DatasetError.unreadable(path: path, reason: "not a regular file")
        }
        let size = Int(st.st_size)
        var failure: DatasetError?
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            var done = 0
            while done < size {
                let n = read(fd, buffer.baseAddress! + done, size - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = .unreadable(path: path, reason: String(cString: strerror(errno)))
                    break
                }
                if n == 0 { break }
                done += n
            }
            if failure == nil && done < size {
                failure = .truncated(file: path, offset: done, expected: size - done, available: 0)
            }
            // Bytes not read are zero-filled so that the array is always fully initialised.
            if done < size { (buffer.baseAddress! + done).initialize(repeating: 0, count: size - done) }
            initialized = size
        }
        if let failure { throw failure }
        return bytes
    }
}

// MARK: - Byte reading

/// Bounds-checked reads of big- and little-endian integers from a file's bytes; a read past the end throws
/// `DatasetError.truncated` naming the file, the offset and the expected byte count. Every reader of an
/// untrusted format (IDX, safetensors, .npy, TFRecord) goes through it, so no byte sequence can trap.
public struct ByteReader: Sendable {
    public let bytes: [UInt8]
    public let file: String

    public init(bytes: [UInt8], file: String) {
        self.bytes = bytes
        self.file = file
    }

    public var count: Int { bytes.count }

    public func require(_ offset: Int, _ count: Int) throws {
        guard offset >= 0, count >= 0, offset <= bytes.count, count <= bytes.count - offset else {
            throw DatasetError.truncated(file: file, offset: offset, expected: count,
                                         available: max(0, bytes.count - max(0, offset)))
        }
    }

    public func uint32BE(at offset: Int) throws -> UInt32 {
        try require(offset, 4)
        return UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16
            | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }

    public func uint16LE(at offset: Int) throws -> UInt16 {
        try require(offset, 2)
        return UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    }

    public func uint32LE(at offset: Int) throws -> UInt32 {
        try require(offset, 4)
        var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(bytes[offset + i]) << (8 * i) }
        return v
    }

    public func uint64LE(at offset: Int) throws -> UInt64 {
        try require(offset, 8)
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(bytes[offset + i]) << (8 * i) }
        return v
    }

    /// `count` bytes from `offset`.
    public func slice(_ offset: Int, _ count: Int) throws -> ArraySlice<UInt8> {
        try require(offset, count)
        return bytes[offset..<(offset + count)]
    }

    /// `count` little-endian float32 values from `offset`.
    public func float32LE(at offset: Int, count: Int) throws -> [Float] {
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: 4)
        guard !overflow else {
            throw DatasetError.invalidFormat(file: file, reason: "\(count) float32 values do not fit in memory")
        }
        try require(offset, byteCount)
        return (0..<count).map { i in
            let o = offset + 4 * i
            let bits = UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24
            return Float(bitPattern: bits)
        }
    }
}
