import ACAIData
import Foundation

/// NumPy's `.npy` format, version 1.0 (numpy.lib.format): the magic `\x93NUMPY`, bytes 1 and 0, a
/// little-endian UInt16 header length, and an ASCII Python dict literal
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (n, d), }` padded with spaces and ending in a newline
/// so that the data starts on a 64-byte boundary; then the values, little-endian, C order.
/// Written for `float32` (`<f4`) and `int64` (`<i8`) arrays; the reader accepts the same two and checks the
/// header and the data length against the file.
public enum NumPy {
    public enum Values: Equatable, Sendable {
        case float32([Float])
        case int64([Int64])

        var descr: String {
            switch self {
            case .float32: return "<f4"
            case .int64: return "<i8"
            }
        }

        var count: Int {
            switch self {
            case let .float32(v): return v.count
            case let .int64(v): return v.count
            }
        }
    }

    public struct Array: Equatable, Sendable {
        public var shape: [Int]
        public var values: Values

        public init(shape: [Int], values: Values) { self.shape = shape; self.values = values }
    }

    static let magic: [UInt8] = [0x93] + Swift.Array("NUMPY".utf8)

    public static func encode(_ array: Array) throws -> [UInt8] {
        guard array.shape.allSatisfy({ $0 >= 0 }), array.shape.reduce(1, *) == array.values.count else {
            throw TrainingError.badOption(".npy: shape \(array.shape) does not hold \(array.values.count) values")
        }
        let shape = array.shape.count == 1 ? "(\(array.shape[0]),)" : "(" + array.shape.map(String.init).joined(separator: ", ") + ")"
        var header = Swift.Array("{'descr': '\(array.values.descr)', 'fortran_order': False, 'shape': \(shape), }".utf8)
        // magic (6) + version (2) + length (2) + header + newline ≡ 0 mod 64
        while (10 + header.count + 1) % 64 != 0 { header.append(0x20) }
        header.append(0x0A)
        guard header.count <= Int(UInt16.max) else { throw TrainingError.badOption(".npy: shape \(array.shape) makes too long a header") }
        var out = magic + [1, 0]
        out.append(UInt8(header.count & 0xFF))
        out.append(UInt8(header.count >> 8))
        out += header
        switch array.values {
        case let .float32(v):
            out.reserveCapacity(out.count + 4 * v.count)
            for x in v { withUnsafeBytes(of: x.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
        case let .int64(v):
            out.reserveCapacity(out.count + 8 * v.count)
            for x in v { withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) } }
        }
        return out
    }

    public static func write(_ array: Array, to path: String) throws {
        try writeAtomically(Data(try encode(array)), to: path)
    }

    public static func read(_ path: String) throws -> Array {
        try decode(try readFileBytes(path), file: path)
    }

    /// Parses a version 1.0 or 2.0 file of `<f4` or `<i8` values in C order.
    public static func decode(_ bytes: [UInt8], file: String) throws -> Array {
        func bad(_ reason: String) -> DatasetError { .invalidFormat(file: file, reason: reason) }
        let reader = ByteReader(bytes: bytes, file: file)
        guard Swift.Array(try reader.slice(0, 6)) == magic else {
            throw DatasetError.badMagic(file: file, found: bytes.prefix(6).map { String(format: "%02x", $0) }.joined(), expected: "93 'NUMPY'")
        }
        let major = try reader.slice(6, 1).first ?? 0
        let headerLength: Int, headerStart: Int
        switch major {
        case 1: headerLength = Int(try reader.uint16LE(at: 8)); headerStart = 10
        case 2, 3: headerLength = Int(try reader.uint32LE(at: 8)); headerStart = 12
        default: throw bad("unsupported .npy version \(major)")
        }
        let header = String(decoding: try reader.slice(headerStart, headerLength), as: UTF8.self)
        func field(_ key: String) -> Substring? {
            guard let r = header.range(of: "'\(key)':") else { return nil }
            return header[r.upperBound...].drop { $0 == " " }
        }
        guard let descrField = field("descr"), descrField.hasPrefix("'"),
              let descr = descrField.dropFirst().split(separator: "'", maxSplits: 1).first else {
            throw bad("header has no 'descr': \(header)")
        }
        guard let order = field("fortran_order") else { throw bad("header has no 'fortran_order'") }
        guard order.hasPrefix("False") else { throw bad("Fortran-order arrays are not supported") }
        guard let shapeField = field("shape"), shapeField.hasPrefix("("), let close = shapeField.firstIndex(of: ")") else {
            throw bad("header has no 'shape' tuple")
        }
        var shape: [Int] = []
        for part in shapeField[shapeField.index(after: shapeField.startIndex)..<close].split(separator: ",") {
            let text = part.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            guard let d = Int(text), d >= 0 else { throw bad("shape entry '\(text)' is not a non-negative integer") }
            shape.append(d)
        }
        var count = 1
        for d in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw bad("shape \(shape) overflows") }
            count = p
        }
        let dataStart = headerStart + headerLength
        let width = descr == "<f4" ? 4 : descr == "<i8" ? 8 : 0
        guard width > 0 else { throw bad("dtype \(descr): only <f4 (float32) and <i8 (int64) are read") }
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: width)
        guard !overflow, bytes.count - dataStart == byteCount else {
            throw bad("shape \(shape) of \(descr) needs \(overflow ? "too many" : String(byteCount)) bytes of data, the file has \(bytes.count - dataStart)")
        }
        if width == 4 {
            return Array(shape: shape, values: .float32(try reader.float32LE(at: dataStart, count: count)))
        }
        var values: [Int64] = []
        values.reserveCapacity(count)
        for i in 0..<count { values.append(Int64(bitPattern: try reader.uint64LE(at: dataStart + 8 * i))) }
        return Array(shape: shape, values: .int64(values))
    }
}
