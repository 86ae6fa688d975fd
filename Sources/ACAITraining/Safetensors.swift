import ACAI
import ACAIData
import ACAIModels
import Foundation

/// A safetensors file that cannot be read or does not fit the model; names the file and, where one is at
/// fault, the tensor.
public struct SafetensorsError: Error, CustomStringConvertible, Sendable {
    public let file: String
    public let tensor: String?
    public let reason: String

    public init(file: String, tensor: String? = nil, _ reason: String) {
        self.file = file; self.tensor = tensor; self.reason = reason
    }

    public var description: String {
        "safetensors file \(file)" + (tensor.map { ", tensor '\($0)'" } ?? "") + ": \(reason)"
    }
}

/// The safetensors format (huggingface/safetensors), float32 tensors only:
///   8 bytes   N, the header's length, unsigned little-endian
///   N bytes   a UTF-8 JSON object: for each tensor `"name": {"dtype": "F32", "shape": [...],
///             "data_offsets": [begin, end]}` (offsets into the data that follows, end exclusive), and an
///             optional `"__metadata__"` object of string values; padded with spaces so that the data starts
///             on an 8-byte boundary
///   rest      the tensors' bytes, little-endian, row-major, contiguous and without holes
/// The reader checks every length and offset against the file (it never traps on any bytes) and refuses
/// what the specification forbids: overlapping or uncovered data, a header past the file's end or over
/// 100 MB, a shape whose element count does not match its byte range.
public struct SafetensorsFile: Sendable {
    public struct Tensor: Sendable, Equatable {
        public var name: String
        public var shape: [Int]
        public var values: [Float]

        public init(name: String, shape: [Int], values: [Float]) {
            self.name = name; self.shape = shape; self.values = values
        }
    }

    /// In the order of their data in the file.
    public var tensors: [Tensor]
    public var metadata: [String: String]

    public init(tensors: [Tensor], metadata: [String: String] = [:]) {
        self.tensors = tensors; self.metadata = metadata
    }

    public func tensor(_ name: String) -> Tensor? { tensors.first { $0.name == name } }

    static let maxHeader = 100_000_000

    /// The file's bytes.
    public func encoded() throws -> [UInt8] {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for t in tensors {
            guard t.name != "__metadata__", header[t.name] == nil else {
                throw SafetensorsError(file: "(being written)", tensor: t.name, "duplicate or reserved tensor name")
            }
            guard t.shape.allSatisfy({ $0 >= 0 }), t.shape.reduce(1, *) == t.values.count else {
                throw SafetensorsError(file: "(being written)", tensor: t.name, "shape \(t.shape) does not hold \(t.values.count) values")
            }
            let end = offset + 4 * t.values.count
            header[t.name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, end]] as [String: Any]
            offset = end
        }
        var json = [UInt8](try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys, .withoutEscapingSlashes]))
        while json.count % 8 != 0 { json.append(0x20) }
        var out: [UInt8] = []
        out.reserveCapacity(8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out += json
        for t in tensors {
            for v in t.values { withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
        }
        return out
    }

    public func write(to path: String) throws {
        try writeAtomically(Data(try encoded()), to: path)
    }

    public static func read(_ path: String) throws -> SafetensorsFile {
        let bytes: [UInt8]
        do { bytes = try readFileBytes(path) } catch { throw SafetensorsError(file: path, "\(error)") }
        return try decode(bytes, file: path)
    }

    /// Parses and validates a whole file; `file` names it in errors.
    public static func decode(_ bytes: [UInt8], file: String) throws -> SafetensorsFile {
        let reader = ByteReader(bytes: bytes, file: file)
        guard bytes.count >= 8 else {
            throw SafetensorsError(file: file, "\(bytes.count) bytes is too short for the 8-byte header length")
        }
        let declared = try reader.uint64LE(at: 0)
        guard declared <= UInt64(maxHeader) else {
            throw SafetensorsError(file: file, "header length \(declared) is over the format's 100 MB limit")
        }
        let headerLength = Int(declared)
        guard headerLength <= bytes.count - 8 else {
            throw SafetensorsError(file: file, "header length \(headerLength) runs past the end of the file (\(bytes.count - 8) bytes after the length)")
        }
        guard headerLength >= 2, bytes[8] == UInt8(ascii: "{") else {
            throw SafetensorsError(file: file, "the header does not start with a JSON object ('{')")
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(try reader.slice(8, headerLength)))
        } catch {
            throw SafetensorsError(file: file, "the header is not valid JSON: \(error.localizedDescription)")
        }
        guard let header = object as? [String: Any] else {
            throw SafetensorsError(file: file, "the header is not a JSON object")
        }
        let dataStart = 8 + headerLength
        let dataLength = bytes.count - dataStart

        var metadata: [String: String] = [:]
        if let raw = header["__metadata__"] {
            guard let dict = raw as? [String: Any] else {
                throw SafetensorsError(file: file, "__metadata__ is not a JSON object")
            }
            for (k, v) in dict {
                guard let s = v as? String else {
                    throw SafetensorsError(file: file, "__metadata__ value '\(k)' is not a string")
                }
                metadata[k] = s
            }
        }

        struct Entry { var name: String; var shape: [Int]; var begin: Int; var end: Int }
        var entries: [Entry] = []
        for (name, raw) in header where name != "__metadata__" {
            guard let info = raw as? [String: Any] else {
                throw SafetensorsError(file: file, tensor: name, "its header entry is not a JSON object")
            }
            guard let dtype = info["dtype"] as? String else {
                throw SafetensorsError(file: file, tensor: name, "no dtype")
            }
            guard dtype == "F32" else {
                throw SafetensorsError(file: file, tensor: name, "dtype \(dtype); acai reads F32 only")
            }
            guard let shapeValues = info["shape"] as? [Any], let shape = integers(shapeValues), shape.allSatisfy({ $0 >= 0 }) else {
                throw SafetensorsError(file: file, tensor: name, "shape is not a list of non-negative integers")
            }
            guard let offsetValues = info["data_offsets"] as? [Any], let offsets = integers(offsetValues),
                  offsets.count == 2 else {
                throw SafetensorsError(file: file, tensor: name, "data_offsets is not a pair of integers")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, begin <= end, end <= dataLength else {
                throw SafetensorsError(file: file, tensor: name, "data_offsets [\(begin), \(end)] lie outside the \(dataLength) bytes of data")
            }
            var elements = 1
            for d in shape {
                let (product, overflow) = elements.multipliedReportingOverflow(by: d)
                guard !overflow else { throw SafetensorsError(file: file, tensor: name, "shape \(shape) overflows") }
                elements = product
            }
            let (byteCount, overflow) = elements.multipliedReportingOverflow(by: 4)
            guard !overflow, byteCount == end - begin else {
                throw SafetensorsError(file: file, tensor: name, "shape \(shape) needs \(overflow ? "more than Int.max" : String(byteCount)) bytes of F32, data_offsets give \(end - begin)")
            }
            entries.append(Entry(name: name, shape: shape, begin: begin, end: end))
        }
        // The specification: the byte ranges cover the data exactly, without holes or overlaps.
        entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var covered = 0
        for e in entries {
            guard e.begin == covered else {
                throw SafetensorsError(file: file, tensor: e.name, e.begin < covered
                    ? "its data [\(e.begin), \(e.end)] overlaps another tensor's"
                    : "bytes \(covered)..<\(e.begin) before its data belong to no tensor")
            }
            covered = e.end
        }
        guard covered == dataLength else {
            throw SafetensorsError(file: file, "the tensors cover \(covered) bytes of data, the file holds \(dataLength)")
        }
        let tensors = try entries.map { e in
            Tensor(name: e.name, shape: e.shape, values: try reader.float32LE(at: dataStart + e.begin, count: (e.end - e.begin) / 4))
        }
        return SafetensorsFile(tensors: tensors, metadata: metadata)
    }

    /// Whole numbers only (JSON 3 or 3.0; not 3.5 or "3"), within ±2^53 so that the conversion is exact.
    static func integers(_ values: [Any]) -> [Int]? {
        var out: [Int] = []
        for v in values {
            guard let n = v as? NSNumber else { return nil }
            let d = n.doubleValue
            guard d.isFinite, d.rounded() == d, d.magnitude <= 9.0e15 else { return nil }
            out.append(Int(d))
        }
        return out
    }
}

/// The model's tensors in and out of safetensors: every parameter and buffer under its name in the model
/// (e.g. `encoder/conv0/w`, HWIO filters and [in, out] dense weights as stored), and metadata
/// `acai.model` (the model kind), `acai.config` (the ModelConfig as JSON), `acai.samples` and `acai.step`.
public enum ModelWeights {
    public static func file(of model: any Autoencoder, samples: Int, step: Int) throws -> SafetensorsFile {
        var tensors: [SafetensorsFile.Tensor] = []
        for p in model.parameters { tensors.append(.init(name: p.name, shape: p.shape, values: try p.toArray())) }
        for b in model.buffers { tensors.append(.init(name: b.name, shape: b.tensor.shape, values: try b.tensor.toArray())) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let config = String(decoding: try encoder.encode(model.config), as: UTF8.self)
        return SafetensorsFile(tensors: tensors, metadata: [
            "acai.model": model.kind.rawValue, "acai.config": config,
            "acai.samples": String(samples), "acai.step": String(step), "acai.format": "1",
        ])
    }

    public static func export(_ model: any Autoencoder, samples: Int, step: Int, to path: String) throws {
        try file(of: model, samples: samples, step: step).write(to: path)
    }

    /// Loads `path` into `model`: every parameter and buffer must be in the file with the model's shape, the
    /// file may hold nothing else, and when its metadata names a model kind it must be the model's. All of it
    /// is checked before the first value is written, so a refused file leaves the model as it was.
    public static func load(_ path: String, into model: any Autoencoder) throws {
        let file = try SafetensorsFile.read(path)
        if let kind = file.metadata["acai.model"], kind != model.kind.rawValue {
            throw SafetensorsError(file: path, "holds a model of kind '\(kind)', not '\(model.kind.rawValue)'")
        }
        var byName: [String: SafetensorsFile.Tensor] = [:]
        for t in file.tensors { byName[t.name] = t }
        var targets: [(name: String, shape: [Int], write: ([Float]) throws -> Void)] = model.parameters.map { p in
            (p.name, p.shape, { try p.assign($0) })
        }
        for b in model.buffers {
            let t = b.tensor
            targets.append((b.name, t.shape, { try t.device.write($0, to: t.buffer) }))
        }
        for target in targets {
            guard let t = byName[target.name] else {
                throw SafetensorsError(file: path, tensor: target.name, "missing: the \(model.kind.rawValue) model needs it (shape \(target.shape))")
            }
            guard t.shape == target.shape else {
                throw SafetensorsError(file: path, tensor: target.name, "shape \(t.shape) in the file, the model's is \(target.shape)")
            }
        }
        let known = Set(targets.map(\.name))
        if let extra = file.tensors.first(where: { !known.contains($0.name) }) {
            throw SafetensorsError(file: path, tensor: extra.name, "not a tensor of the \(model.kind.rawValue) model")
        }
        for target in targets { try target.write(byName[target.name]!.values) }
    }
}
