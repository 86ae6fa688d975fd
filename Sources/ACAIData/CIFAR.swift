/// CIFAR-10 in its binary version: files of 3073-byte records, a label byte then the 1024 red, 1024 green
/// and 1024 blue bytes of a 32×32 image (each plane row-major). Converted to NHWC interleaved RGB in [−1, 1].
public enum CIFAR10 {
    static let side = 32
    static let recordSize = 1 + 3 * 32 * 32
    /// The binary files' usual folder inside a dataset folder.
    public static let binaryFolder = "cifar-10-batches-bin"

    /// The folder holding the `.bin` files: `directory/cifar-10-batches-bin` when it exists, else `directory`.
    static func binaryDirectory(_ directory: String) -> String {
        let sub = FileIO.join(directory, binaryFolder)
        return FileIO.isDirectory(sub) ? sub : directory
    }

    /// Train: `data_batch_1.bin` … `data_batch_5.bin`, those present, in that order (at least one);
    /// test: `test_batch.bin`.
    static func load(split: Split, directory: String, limit: Int?) throws -> Dataset {
        let folder = binaryDirectory(directory)
        let files: [String]
        switch split {
        case .train:
            files = (1...5).map { FileIO.join(folder, "data_batch_\($0).bin") }.filter(FileIO.isRegularFile)
            guard !files.isEmpty else {
                throw DatasetError.missingFile(
                    path: FileIO.join(folder, "data_batch_1.bin"),
                    expected: "expected at least one of data_batch_1.bin ... data_batch_5.bin in \(folder) (or in \(FileIO.join(directory, binaryFolder)))")
            }
        case .test:
            let path = FileIO.join(folder, "test_batch.bin")
            guard FileIO.isRegularFile(path) else {
                throw DatasetError.missingFile(
                    path: path, expected: "expected test_batch.bin in \(folder) (or in \(FileIO.join(directory, binaryFolder)))")
            }
            files = [path]
        }
        return try load(files: files, limit: limit)
    }

    /// Reads and concatenates CIFAR-10 binary batch files.
    public static func load(files: [String], limit: Int? = nil) throws -> Dataset {
        var images: [Float] = []
        var labels: [Int] = []
        let wanted = max(0, limit ?? Int.max)
        for path in files where labels.count < wanted {
            try append(FileIO.readAll(path), file: path, wanted: wanted, images: &images, labels: &labels)
        }
        return dataset(images: images, labels: labels)
    }

    /// Parses the bytes of one CIFAR-10 binary batch (at most `limit` records); errors name `file`.
    public static func parse(_ bytes: [UInt8], file: String, limit: Int? = nil) throws -> Dataset {
        var images: [Float] = []
        var labels: [Int] = []
        try append(bytes, file: file, wanted: max(0, limit ?? Int.max), images: &images, labels: &labels)
        return dataset(images: images, labels: labels)
    }

    static func dataset(images: [Float], labels: [Int]) -> Dataset {
        Dataset(name: DatasetName.cifar10.rawValue, images: images, labels: labels, count: labels.count,
                height: side, width: side, channels: 3, classes: 10)
    }

    /// Appends the records of one batch file's bytes, until `labels` holds `wanted` examples.
    static func append(_ bytes: [UInt8], file path: String, wanted: Int, images: inout [Float], labels: inout [Int]) throws {
        let pixels = side * side * 3
        let lut = byteToUnit
        guard !bytes.isEmpty else {
            throw DatasetError.truncated(file: path, offset: 0, expected: recordSize, available: 0)
        }
        let records = bytes.count / recordSize
        guard bytes.count % recordSize == 0 else {
            throw DatasetError.truncated(file: path, offset: records * recordSize, expected: recordSize,
                                         available: bytes.count - records * recordSize)
        }
        let take = min(records, wanted - labels.count)
        for r in 0..<take {
            let label = Int(bytes[r * recordSize])
            guard label < 10 else {
                throw DatasetError.invalidFormat(file: path, reason: "label \(label) of record \(r) (offset \(r * recordSize)) is not in 0...9")
            }
            labels.append(label)
        }
        let start = images.count
        images += [Float](repeating: 0, count: take * pixels)
        bytes.withUnsafeBufferPointer { src in
            images.withUnsafeMutableBufferPointer { dst in
                lut.withUnsafeBufferPointer { table in
                    guard let s = src.baseAddress, let d = dst.baseAddress, let t = table.baseAddress else { return }
                    let plane = side * side
                    for r in 0..<take {
                        let record = s + r * recordSize + 1
                        let image = d + start + r * pixels
                        for p in 0..<plane {
                            image[3 * p] = t[Int(record[p])]
                            image[3 * p + 1] = t[Int(record[plane + p])]
                            image[3 * p + 2] = t[Int(record[2 * plane + p])]
                        }
                    }
                }
            }
        }
    }
}
