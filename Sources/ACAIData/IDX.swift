/// The IDX format of MNIST and Fashion-MNIST: a big-endian header `00 00 08 ndim` (8 = unsigned byte), then
/// `ndim` big-endian UInt32 sizes, then the bytes, row-major.
public enum IDX {
    /// A parsed IDX file of unsigned bytes.
    public struct File: Sendable {
        /// The path the bytes came from (for the `.gz` the compressed file's path).
        public let path: String
        public let dimensions: [Int]
        /// The whole decompressed file; the data starts at `dataOffset`.
        public let bytes: [UInt8]
        public let dataOffset: Int
    }

    /// Reads `path` (gunzipping it when its name ends in `.gz`) and checks that it is an IDX file of `ndim`
    /// dimensions whose data is all present (trailing bytes are ignored, as the reference does).
    public static func read(_ path: String, dimensions ndim: Int) throws -> File {
        let bytes = path.hasSuffix(".gz") ? try Gzip.decompressFile(path) : try FileIO.readAll(path)
        return try parse(bytes, dimensions: ndim, file: path)
    }

    /// Parses the (decompressed) bytes of an IDX file of `ndim` dimensions; errors name `path`.
    public static func parse(_ bytes: [UInt8], dimensions ndim: Int, file path: String) throws -> File {
        guard (1...255).contains(ndim) else {
            throw DatasetError.invalidFormat(file: path, reason: "\(ndim) dimensions asked for; IDX files have 1...255")
        }
        let reader = ByteReader(bytes: bytes, file: path)
        let magic = try reader.uint32BE(at: 0)
        let expected = UInt32(0x0000_0800) | UInt32(ndim)
        guard magic == expected else {
            throw DatasetError.badMagic(file: path, found: hex32(magic), expected: "\(hex32(expected)) (\(expected))")
        }
        var dims: [Int] = []
        for d in 0..<ndim { dims.append(Int(try reader.uint32BE(at: 4 + 4 * d))) }
        let offset = 4 + 4 * ndim
        let (size, overflow) = dims.reduce((1, false)) { acc, d in
            let (p, o) = acc.0.multipliedReportingOverflow(by: d)
            return (p, acc.1 || o)
        }
        guard !overflow else {
            throw DatasetError.invalidFormat(
                file: path, reason: "header dimensions \(dims.map(String.init).joined(separator: "x")) at offset 4 overflow the data size")
        }
        try reader.require(offset, size)
        return File(path: path, dimensions: dims, bytes: bytes, dataOffset: offset)
    }

    /// The path of `base` in `directory`: the raw file when present, else `base.gz`.
    static func locate(_ base: String, in directory: String) throws -> String {
        let raw = FileIO.join(directory, base)
        if FileIO.isRegularFile(raw) { return raw }
        let gz = raw + ".gz"
        if FileIO.isRegularFile(gz) { return gz }
        throw DatasetError.missingFile(path: raw, expected: "expected \(base) or \(base).gz in \(directory)")
    }

    /// MNIST / Fashion-MNIST as the reference's `mnist32`: 28×28 greyscale scaled to [−1, 1], then padded
    /// with 2 pixels of −1 on each side to 32×32×1 (`tf.pad(x, ..., constant_values=-1.)` after scaling).
    static func loadMNIST32(name: String, split: Split, directory: String, limit: Int?) throws -> Dataset {
        let prefix = split == .train ? "train" : "t10k"
        let imagesPath = try locate("\(prefix)-images-idx3-ubyte", in: directory)
        let labelsPath = try locate("\(prefix)-labels-idx1-ubyte", in: directory)
        return try mnist32(images: read(imagesPath, dimensions: 3), labels: read(labelsPath, dimensions: 1),
                           name: name, limit: limit)
    }

    /// The `mnist32` dataset of a parsed images file (3 dimensions) and labels file (1 dimension): at most
    /// `limit` examples.
    public static func mnist32(images: File, labels: File, name: String = "mnist32", limit: Int? = nil) throws -> Dataset {
        let imagesPath = images.path, labelsPath = labels.path
        guard images.dimensions.count == 3, labels.dimensions.count == 1 else {
            throw DatasetError.invalidFormat(
                file: images.dimensions.count == 3 ? labelsPath : imagesPath,
                reason: "expected 3 dimensions for images and 1 for labels, found \(images.dimensions.count) and \(labels.dimensions.count)")
        }
        let n = images.dimensions[0], rows = images.dimensions[1], cols = images.dimensions[2]
        guard labels.dimensions[0] == n else {
            throw DatasetError.countMismatch(imagesFile: imagesPath, images: n, labelsFile: labelsPath,
                                             labels: labels.dimensions[0])
        }
        guard rows > 0, cols > 0 else {
            throw DatasetError.invalidFormat(file: imagesPath, reason: "images of \(rows)x\(cols) pixels")
        }
        let count = min(n, max(0, limit ?? n))
        let pad = 2, height = rows + 2 * pad, width = cols + 2 * pad
        var out = [Float](repeating: -1, count: count * height * width)
        let lut = byteToUnit
        images.bytes.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                lut.withUnsafeBufferPointer { table in
                    guard let s = src.baseAddress, let d = dst.baseAddress, let t = table.baseAddress else { return }
                    for i in 0..<count {
                        let image = s + images.dataOffset + i * rows * cols
                        let target = d + i * height * width + pad * width + pad
                        for r in 0..<rows {
                            let srow = image + r * cols, drow = target + r * width
                            for c in 0..<cols { drow[c] = t[Int(srow[c])] }
                        }
                    }
                }
            }
        }
        var labelValues = [Int](repeating: 0, count: count)
        for i in 0..<count {
            let value = Int(labels.bytes[labels.dataOffset + i])
            guard value < 10 else {
                throw DatasetError.invalidFormat(file: labelsPath, reason: "label \(value) of example \(i) is not in 0...9")
            }
            labelValues[i] = value
        }
        return Dataset(name: name, images: out, labels: labelValues, count: count, height: height, width: width,
                       channels: 1, classes: 10)
    }

    static func hex32(_ v: UInt32) -> String {
        let s = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 8 - s.count)) + s
    }
}
