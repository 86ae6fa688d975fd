/// A reader of MATLAB Level 5 MAT-files (the format of `scipy.io.savemat` and of MATLAB's `-v6`/`-v7`
/// files): a 128-byte header (116 bytes of text, 8 of subsystem offset, a 2-byte version and the 2-byte
/// endian indicator "IM" (little-endian) or "MI" (big-endian)), then data elements, each a tag (type,
/// byte count; the "small data element" form packs both in 4 bytes when the count is at most 4, recognised by
/// non-zero upper 16 bits of the first word) and its data padded to 8 bytes. Variables are miMATRIX (14)
/// elements, possibly inside miCOMPRESSED (15) elements holding a zlib stream. A matrix holds sub-elements:
/// array flags (class in the low byte), dimensions, name, then for numeric classes the real part (stored in
/// any numeric type, which may differ from the class: MATLAB stores integral doubles as small integers).
/// Only numeric variables' data is kept; others (cell, struct, char, sparse, ...) are listed by name.
/// MATLAB 7.3 files (HDF5) are refused with a clear error.
public struct MATFile: Sendable {
    /// A variable of the file.
    public struct Variable: Sendable {
        public let name: String
        /// The MATLAB class (mxDOUBLE_CLASS = 6, mxUINT8_CLASS = 9, ...).
        public let classID: UInt8
        /// Dimensions in MATLAB order (column-major: the first index varies fastest).
        public let dimensions: [Int]
        /// The real part, for numeric classes.
        public let data: NumericData?

        public var elementCount: Int { dimensions.reduce(1, *) }
    }

    /// Numeric data as stored in the file: `count` elements of type `type` (miINT8 = 1 … miUINT64 = 13).
    public struct NumericData: Sendable {
        public let type: UInt32
        let storage: [UInt8]
        let offset: Int
        public let count: Int
        let bigEndian: Bool

        /// Size in bytes of one element of MAT data type `type`, nil for a non-numeric type.
        static func elementSize(_ type: UInt32) -> Int? {
            switch type {
            case 1, 2: return 1          // miINT8, miUINT8
            case 3, 4: return 2          // miINT16, miUINT16
            case 5, 6, 7: return 4       // miINT32, miUINT32, miSINGLE
            case 9, 12, 13: return 8     // miDOUBLE, miINT64, miUINT64
            default: return nil
            }
        }

        /// Element `index` as a Double (exact for every type except 64-bit integers beyond 2^53).
        public func value(at index: Int) -> Double {
            let size = NumericData.elementSize(type) ?? 1
            let p = offset + index * size
            var raw: UInt64 = 0
            for k in 0..<size {
                let byte = UInt64(storage[p + k])
                raw |= bigEndian ? byte << UInt64(8 * (size - 1 - k)) : byte << UInt64(8 * k)
            }
            switch type {
            case 1: return Double(Int8(truncatingIfNeeded: raw))
            case 2: return Double(UInt8(truncatingIfNeeded: raw))
            case 3: return Double(Int16(truncatingIfNeeded: raw))
            case 4: return Double(UInt16(truncatingIfNeeded: raw))
            case 5: return Double(Int32(truncatingIfNeeded: raw))
            case 6: return Double(UInt32(truncatingIfNeeded: raw))
            case 7: return Double(Float(bitPattern: UInt32(truncatingIfNeeded: raw)))
            case 9: return Double(bitPattern: raw)
            case 12: return Double(Int64(bitPattern: raw))
            case 13: return Double(raw)
            default: return .nan
            }
        }

        /// Calls `body` with the elements as raw bytes when they are stored as miUINT8 / miINT8.
        func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R? {
            guard type == 2 else { return nil }
            return try storage.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[offset..<(offset + count)])) }
        }
    }

    public let path: String
    public let variables: [Variable]

    public func variable(_ name: String) -> Variable? { variables.first { $0.name == name } }

    /// Parses the file at `path`.
    public init(path: String) throws {
        try self.init(bytes: FileIO.readAll(path), path: path)
    }

    /// Parses the bytes of a MAT-file; `path` names it in errors.
    public init(bytes: [UInt8], path: String) throws {
        self.path = path
        guard bytes.count >= 128 else {
            throw DatasetError.truncated(file: path, offset: 0, expected: 128, available: bytes.count)
        }
        let text = String(decoding: bytes[0..<116].prefix(while: { $0 != 0 }), as: UTF8.self)
        if text.hasPrefix("MATLAB 7.3") || (bytes.count >= 520 && Array(bytes[512..<520]) == [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]) {
            throw DatasetError.invalidFormat(file: path, reason: "MATLAB 7.3 (HDF5) MAT-files are not supported; save with -v7 or scipy.io.savemat")
        }
        let bigEndian: Bool
        switch (bytes[126], bytes[127]) {
        case (0x49, 0x4d): bigEndian = false  // "IM"
        case (0x4d, 0x49): bigEndian = true   // "MI"
        default:
            throw DatasetError.badMagic(file: path, found: "endian indicator bytes \(bytes[126]) \(bytes[127]) at offset 126",
                                        expected: "\"IM\" or \"MI\" (MATLAB 5.0 MAT-file)")
        }
        guard text.hasPrefix("MATLAB") else {
            throw DatasetError.badMagic(file: path, found: "header text \"\(text.prefix(20))\"", expected: "\"MATLAB 5.0 MAT-file\"")
        }
        var parser = Parser(path: path, bigEndian: bigEndian)
        try parser.parseElements(bytes, from: 128, to: bytes.count, topLevel: true)
        variables = parser.variables
    }

    struct Parser {
        let path: String
        let bigEndian: Bool
        var variables: [Variable] = []

        struct Tag {
            let type: UInt32
            let size: Int
            let dataOffset: Int
            /// Offset of the next element (data padded to 8 bytes, or 8 bytes for a small element).
            let next: Int
        }

        func uint32(_ b: [UInt8], _ o: Int) -> UInt32 {
            bigEndian
                ? UInt32(b[o]) << 24 | UInt32(b[o + 1]) << 16 | UInt32(b[o + 2]) << 8 | UInt32(b[o + 3])
                : UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24
        }

        func truncated(_ b: [UInt8], _ offset: Int, _ expected: Int, _ end: Int, _ where_: String) -> DatasetError {
            // Offsets inside a decompressed element are reported as such.
            .truncated(file: where_ == "" ? path : "\(path) (\(where_))", offset: offset, expected: expected,
                       available: max(0, end - offset))
        }

        func tag(_ b: [UInt8], at offset: Int, end: Int, context: String, padCompressed: Bool = true) throws -> Tag {
            guard end - offset >= 8 else { throw truncated(b, offset, 8, end, context) }
            let first = uint32(b, offset)
            if first >> 16 != 0 {
                let size = Int(first >> 16)
                guard size <= 4 else {
                    throw DatasetError.invalidFormat(file: path, reason: "small data element of \(size) bytes at offset \(offset)\(context.isEmpty ? "" : " (\(context))")")
                }
                return Tag(type: first & 0xffff, size: size, dataOffset: offset + 4, next: offset + 8)
            }
            let size = Int(uint32(b, offset + 4))
            guard size <= end - offset - 8 else { throw truncated(b, offset + 8, size, end, context) }
            let type = first
            // miCOMPRESSED elements are not padded; others are padded to a multiple of 8 bytes.
            let padded = type == 15 && !padCompressed ? size : (size + 7) & ~7
            return Tag(type: type, size: size, dataOffset: offset + 8, next: min(end, offset + 8 + padded))
        }

        mutating func parseElements(_ b: [UInt8], from start: Int, to end: Int, topLevel: Bool, context: String = "") throws {
            var offset = start
            while offset < end {
                // Trailing padding shorter than a tag is tolerated.
                if end - offset < 8 && b[offset..<end].allSatisfy({ $0 == 0 }) { break }
                let t = try tag(b, at: offset, end: end, context: context, padCompressed: false)
                switch t.type {
                case 15 where topLevel:
                    let inflated = try b.withUnsafeBytes { raw in
                        try Gzip.inflate(UnsafeRawBufferPointer(rebasing: raw[t.dataOffset..<(t.dataOffset + t.size)]),
                                         format: .zlib, file: "\(path) (compressed element at offset \(offset))")
                    }
                    try parseElements(inflated, from: 0, to: inflated.count, topLevel: false,
                                      context: "decompressed element at offset \(offset)")
                case 14:
                    try parseMatrix(b, from: t.dataOffset, to: t.dataOffset + t.size, context: context)
                default:
                    break  // other top-level elements carry no variable
                }
                offset = t.next
            }
        }

        mutating func parseMatrix(_ b: [UInt8], from start: Int, to end: Int, context: String) throws {
            guard end > start else { return }  // an empty miMATRIX (e.g. an empty cell)
            let flagsTag = try tag(b, at: start, end: end, context: context)
            guard flagsTag.type == 6, flagsTag.size >= 4 else {
                throw DatasetError.invalidFormat(file: path, reason: "matrix at offset \(start)\(context.isEmpty ? "" : " (\(context))") does not start with array flags (miUINT32)")
            }
            let flags = uint32(b, flagsTag.dataOffset)
            let classID = UInt8(truncatingIfNeeded: flags)
            let dimsTag = try tag(b, at: flagsTag.next, end: end, context: context)
            guard dimsTag.type == 5, dimsTag.size % 4 == 0 else {
                throw DatasetError.invalidFormat(file: path, reason: "matrix at offset \(start)\(context.isEmpty ? "" : " (\(context))") has no miINT32 dimensions")
            }
            var dims: [Int] = []
            for k in 0..<(dimsTag.size / 4) {
                let d = Int(Int32(bitPattern: uint32(b, dimsTag.dataOffset + 4 * k)))
                guard d >= 0 else {
                    throw DatasetError.invalidFormat(file: path, reason: "negative dimension \(d) in matrix at offset \(start)")
                }
                dims.append(d)
            }
            // The element count of every variable must be an Int: `elementCount` and the SVHN conversion use it.
            let (elements, overflow) = dims.reduce((1, false)) { acc, d in
                let (p, o) = acc.0.multipliedReportingOverflow(by: d)
                return (p, acc.1 || o)
            }
            guard !overflow else {
                throw DatasetError.invalidFormat(file: path, reason: "dimensions \(dims.map(String.init).joined(separator: "x")) of the matrix at offset \(start)\(context.isEmpty ? "" : " (\(context))") overflow the element count")
            }
            let nameTag = try tag(b, at: dimsTag.next, end: end, context: context)
            let name = String(decoding: b[nameTag.dataOffset..<(nameTag.dataOffset + nameTag.size)], as: UTF8.self)
            var data: NumericData?
            if (6...15).contains(classID), nameTag.next < end {
                let realTag = try tag(b, at: nameTag.next, end: end, context: context)
                guard let size = NumericData.elementSize(realTag.type) else {
                    throw DatasetError.invalidFormat(file: path, reason: "variable \(name): unsupported data type \(realTag.type)")
                }
                guard realTag.size % size == 0 else {
                    throw DatasetError.invalidFormat(file: path, reason: "variable \(name): \(realTag.size) bytes is not a whole number of \(size)-byte elements")
                }
                let count = realTag.size / size
                guard count == elements else {
                    throw DatasetError.invalidFormat(file: path, reason: "variable \(name): \(count) elements stored for dimensions \(dims.map(String.init).joined(separator: "x"))")
                }
                data = NumericData(type: realTag.type, storage: b, offset: realTag.dataOffset, count: count, bigEndian: bigEndian)
            }
            variables.append(Variable(name: name, classID: classID, dimensions: dims, data: data))
        }
    }
}

/// SVHN's cropped-digits files (`train_32x32.mat`, `test_32x32.mat`, `extra_32x32.mat`): `X` uint8 of
/// 32×32×3×N in MATLAB's column-major order (element (row i, column j, channel c, image n) at
/// i + 32·(j + 32·(c + 3·n))), `y` N×1 with labels 1…10 (10 for the digit 0).
public enum SVHN {
    /// Train: `train_32x32.mat` then `extra_32x32.mat` when present (the paper trains on train + extra);
    /// test: `test_32x32.mat`.
    static func load(split: Split, directory: String, limit: Int?) throws -> Dataset {
        var files: [String]
        switch split {
        case .train:
            let train = FileIO.join(directory, "train_32x32.mat")
            guard FileIO.isRegularFile(train) else {
                throw DatasetError.missingFile(path: train, expected: "expected train_32x32.mat (and optionally extra_32x32.mat) in \(directory)")
            }
            files = [train]
            let extra = FileIO.join(directory, "extra_32x32.mat")
            if FileIO.isRegularFile(extra) { files.append(extra) }
        case .test:
            let test = FileIO.join(directory, "test_32x32.mat")
            guard FileIO.isRegularFile(test) else {
                throw DatasetError.missingFile(path: test, expected: "expected test_32x32.mat in \(directory)")
            }
            files = [test]
        }
        return try load(files: files, limit: limit)
    }

    /// Reads and concatenates SVHN-format MAT-files. Labels are y − 1 as the reference `create_datasets.py`
    /// (`labels -= 1`): digits 1…9 → 0…8 and y = 10 (digit 0) → 9.
    public static func load(files: [String], limit: Int? = nil) throws -> Dataset {
        var builder = Builder(wanted: max(0, limit ?? Int.max))
        for path in files where builder.labels.count < builder.wanted {
            try builder.append(MATFile(path: path))
        }
        return builder.dataset
    }

    /// The dataset of one parsed SVHN-format MAT-file (at most `limit` examples).
    public static func load(_ mat: MATFile, limit: Int? = nil) throws -> Dataset {
        var builder = Builder(wanted: max(0, limit ?? Int.max))
        try builder.append(mat)
        return builder.dataset
    }

    /// Examples of one or more files, in order, up to `wanted`.
    struct Builder {
        let wanted: Int
        var images: [Float] = []
        var labels: [Int] = []
        var shape: (h: Int, w: Int, c: Int, file: String)?

        var dataset: Dataset {
            let s = shape ?? (32, 32, 3, "")
            return Dataset(name: DatasetName.svhn32.rawValue, images: images, labels: labels, count: labels.count,
                           height: s.h, width: s.w, channels: s.c, classes: 10)
        }

        mutating func append(_ mat: MATFile) throws {
            let path = mat.path
            let lut = byteToUnit
            let missing = ["X", "y"].filter { mat.variable($0) == nil }
            guard missing.isEmpty, let x = mat.variable("X"), let y = mat.variable("y") else {
                throw DatasetError.missingVariable(file: path, missing: missing, found: mat.variables.map(\.name))
            }
            guard let xData = x.data else {
                throw DatasetError.invalidFormat(file: path, reason: "variable X is not numeric (MATLAB class \(x.classID))")
            }
            guard let yData = y.data else {
                throw DatasetError.invalidFormat(file: path, reason: "variable y is not numeric (MATLAB class \(y.classID))")
            }
            // MATLAB drops trailing singleton dimensions: a single image is 32×32×3.
            var dims = x.dimensions
            while dims.count < 4 { dims.append(1) }
            guard dims.count == 4, dims[0] > 0, dims[1] > 0, dims[2] > 0 else {
                throw DatasetError.invalidFormat(file: path, reason: "X has dimensions \(x.dimensions.map(String.init).joined(separator: "x")), expected HxWxCxN")
            }
            let (h, w, c, n) = (dims[0], dims[1], dims[2], dims[3])
            if let s = shape, (s.h, s.w, s.c) != (h, w, c) {
                throw DatasetError.shapeMismatch(file: path, found: [h, w, c], expected: [s.h, s.w, s.c], reference: s.file)
            }
            shape = shape ?? (h, w, c, path)
            guard y.elementCount == n, y.dimensions.filter({ $0 != 1 }).count <= 1 else {
                throw DatasetError.countMismatch(imagesFile: "\(path) (X: \(x.dimensions.map(String.init).joined(separator: "x")))",
                                                 images: n,
                                                 labelsFile: "\(path) (y: \(y.dimensions.map(String.init).joined(separator: "x")))",
                                                 labels: y.elementCount)
            }
            let take = min(n, wanted - labels.count)
            for i in 0..<take {
                let v = yData.value(at: i)
                guard v == v.rounded(), v >= 1, v <= 10 else {
                    throw DatasetError.invalidFormat(file: path, reason: "y(\(i + 1)) = \(v) is not a label in 1...10")
                }
                labels.append(Int(v) - 1)
            }
            let per = h * w * c
            let start = images.count
            images += [Float](repeating: 0, count: take * per)
            // Column-major (i, j, ch, k) → NHWC (k, i, j, ch).
            let converted: Void? = xData.withBytes { src in
                images.withUnsafeMutableBufferPointer { dst in
                    lut.withUnsafeBufferPointer { table in
                        guard let s = src.baseAddress, let d = dst.baseAddress, let t = table.baseAddress else { return }
                        for k in 0..<take {
                            let out = d + start + k * per
                            for ch in 0..<c {
                                let plane = s + (ch + c * k) * h * w
                                for j in 0..<w {
                                    let column = plane + j * h
                                    for i in 0..<h { out[(i * w + j) * c + ch] = t[Int(column[i])] }
                                }
                            }
                        }
                    }
                }
            }
            if converted == nil {
                // X stored in another numeric type: convert element by element, checking the byte range.
                for k in 0..<take {
                    for ch in 0..<c {
                        for j in 0..<w {
                            for i in 0..<h {
                                let v = xData.value(at: i + h * (j + w * (ch + c * k)))
                                guard v == v.rounded(), v >= 0, v <= 255 else {
                                    throw DatasetError.invalidFormat(file: path, reason: "X(\(i + 1),\(j + 1),\(ch + 1),\(k + 1)) = \(v) is not a byte value")
                                }
                                images[start + k * per + (i * w + j) * c + ch] = lut[Int(v)]
                            }
                        }
                    }
                }
            }
        }
    }
}
