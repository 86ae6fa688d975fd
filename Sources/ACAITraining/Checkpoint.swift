import ACAI
import ACAIModels
import Foundation

/// A training checkpoint: everything needed to continue a run exactly — parameters, optimiser moments and
/// steps, model buffers, the random stream, the data position, and counters.
///
/// File layout: the 8 bytes "ACAICKPT", a little-endian UInt64 header length, the JSON header, then the
/// float32 values of every tensor in header order (little-endian). The header carries an FNV-1a hash of
/// the values, so a truncated or corrupted file is refused with a message naming it. Files are written
/// atomically: a temporary file in the same folder, fsync, rename, fsync of the folder.
public struct Checkpoint {
    public struct Header: Codable {
        public var format = 1
        public var model: ModelKind
        public var config: ModelConfig
        public var seed: UInt64
        public var step: Int
        public var samples: Int
        public var random: RandomStream
        public var dataPosition: [UInt64]
        public var optimizerSteps: [String: Int]
        public var tensors: [TensorEntry]
        public var valuesHash: UInt64
        public var elapsedSeconds: Double
    }

    public struct TensorEntry: Codable {
        public var name: String
        public var shape: [Int]
    }

    static let magic = Array("ACAICKPT".utf8)

    /// The tensors of a model in checkpoint order: parameters, then each optimiser's moments, then buffers.
    static func tensors(of model: any Autoencoder) -> [(String, Tensor)] {
        var list: [(String, Tensor)] = model.parameters.map { ("param/\($0.name)", $0.value.detached()) }
        for (name, adam) in model.optimizers {
            for (i, p) in adam.parameters.enumerated() {
                list.append(("adam/\(name)/\(p.name)/m", adam.moments[i].m))
                list.append(("adam/\(name)/\(p.name)/v", adam.moments[i].v))
            }
        }
        list += model.buffers.map { ("buffer/\($0.name)", $0.tensor) }
        return list
    }

    public static func write(to path: String, model: any Autoencoder, seed: UInt64, step: Int, samples: Int,
                             random: RandomStream, dataPosition: [UInt64],
                             elapsedSeconds: Double) throws {
        try writeAtomically(encode(model: model, seed: seed, step: step, samples: samples, random: random,
                                   dataPosition: dataPosition, elapsedSeconds: elapsedSeconds), to: path)
    }

    /// The bytes of a checkpoint file (what `write` stores; also what rank 0 sends the other ranks of a
    /// data-parallel run).
    public static func encode(model: any Autoencoder, seed: UInt64, step: Int, samples: Int, random: RandomStream,
                              dataPosition: [UInt64], elapsedSeconds: Double) throws -> Data {
        let entries = tensors(of: model)
        var values: [Float] = []
        for (_, t) in entries { values += try t.toArray() }
        let payload = values.withUnsafeBytes { Data($0) }
        var header = Header(model: model.kind, config: model.config, seed: seed, step: step, samples: samples,
                            random: random, dataPosition: dataPosition,
                            optimizerSteps: Dictionary(uniqueKeysWithValues: model.optimizers.map { ($0.name, $0.adam.step) }),
                            tensors: entries.map { TensorEntry(name: $0.0, shape: $0.1.shape) },
                            valuesHash: fnv1a(payload), elapsedSeconds: elapsedSeconds)
        header.format = 1
        let json = try JSONEncoder().encode(header)
        var file = Data(magic)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(json)
        file.append(payload)
        return file
    }

    /// Reads and validates a checkpoint file.
    public static func read(_ path: String) throws -> (header: Header, values: [Float]) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TrainingError.badCheckpoint("checkpoint \(path) does not exist or cannot be read")
        }
        return try decode(data, path: path)
    }

    /// Parses and validates the bytes of a checkpoint file; errors name `path`.
    public static func decode(_ data: Data, path: String) throws -> (header: Header, values: [Float]) {
        guard data.count >= 16, Array(data.prefix(8)) == magic else {
            throw TrainingError.badCheckpoint("checkpoint \(path) is not an acai checkpoint (expected the bytes 'ACAICKPT' at offset 0)")
        }
        let length = data.subdata(in: 8..<16).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard length <= UInt64(data.count - 16) else {
            throw TrainingError.badCheckpoint("checkpoint \(path) is truncated: header of \(length) bytes at offset 16, file has \(data.count) bytes")
        }
        let header: Header
        do {
            header = try JSONDecoder().decode(Header.self, from: data.subdata(in: 16..<(16 + Int(length))))
        } catch {
            throw TrainingError.badCheckpoint("checkpoint \(path) has a corrupt header: \(error)")
        }
        let payload = data.subdata(in: (16 + Int(length))..<data.count)
        // Shapes come from the file: each is checked before its size is used, against the bytes present.
        var expected = 0
        for (i, tensor) in header.tensors.enumerated() {
            var count = 1
            for d in tensor.shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: d)
                guard d >= 0, !overflow, product <= payload.count / 4 else {
                    throw TrainingError.badCheckpoint("checkpoint \(path): header field tensors[\(i)].shape \(tensor.shape) of tensor \(tensor.name) \(d < 0 ? "is negative" : "needs more than the \(payload.count) bytes of values in the file (truncated or corrupt)")")
                }
                count = product
            }
            expected += 4 * count
            guard expected <= payload.count else {
                throw TrainingError.badCheckpoint("checkpoint \(path) is truncated: the tensors up to tensors[\(i)] (\(tensor.name)) need \(expected) bytes of values, the file has \(payload.count)")
            }
        }
        guard payload.count == expected else {
            throw TrainingError.badCheckpoint("checkpoint \(path) is truncated or padded: \(payload.count) bytes of values, expected \(expected)")
        }
        guard fnv1a(payload) == header.valuesHash else {
            throw TrainingError.badCheckpoint("checkpoint \(path) is corrupt: its values do not match the hash in its header")
        }
        let values = payload.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        return (header, values)
    }

    /// `source`'s parameters, moments, optimiser steps and buffers into `target` (same kind, config and
    /// shapes): a replica made equal to another, through the checkpoint's own encoding.
    public static func copyState(from source: any Autoencoder, to target: any Autoencoder, what: String) throws {
        let bytes = try encode(model: source, seed: 0, step: 0, samples: 0, random: RandomStream(seed: 0),
                               dataPosition: [], elapsedSeconds: 0)
        let (header, values) = try decode(bytes, path: what)
        try restore(header, values: values, into: target, path: what)
    }

    /// Loads the checkpoint's tensors into `model` (built with the header's kind, config and seed).
    public static func restore(_ header: Header, values: [Float], into model: any Autoencoder, path: String) throws {
        let entries = tensors(of: model)
        guard entries.count == header.tensors.count else {
            throw TrainingError.badCheckpoint("checkpoint \(path) has \(header.tensors.count) tensors, the \(model.kind.rawValue) model has \(entries.count)")
        }
        var offset = 0
        for ((name, tensor), entry) in zip(entries, header.tensors) {
            guard name == entry.name, tensor.shape == entry.shape else {
                throw TrainingError.badCheckpoint("checkpoint \(path): tensor \(entry.name) \(entry.shape) does not match the model's \(name) \(tensor.shape)")
            }
            let n = tensor.count
            if let bad = values[offset..<offset + n].firstIndex(where: { !$0.isFinite }) {
                throw TrainingError.badCheckpoint("checkpoint \(path): tensor \(entry.name) holds \(values[bad]) at element \(bad - offset); a checkpoint must hold finite values")
            }
            try tensor.device.write(Array(values[offset..<offset + n]), to: tensor.buffer)
            offset += n
        }
        for (name, adam) in model.optimizers {
            guard let step = header.optimizerSteps[name] else {
                throw TrainingError.badCheckpoint("checkpoint \(path) has no step for optimiser \(name)")
            }
            adam.restoreStep(step)
        }
    }

    static func fnv1a(_ data: Data) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        data.withUnsafeBytes { bytes in
            for b in bytes { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 }
        }
        return hash
    }
}

/// Writes `data` to `path` so that a reader sees either the old file or the whole new one: a temporary
/// file in the same folder, fsync, rename over the target, fsync of the folder.
public func writeAtomically(_ data: Data, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let folder = url.deletingLastPathComponent().path
    let temporary = folder + "/." + url.lastPathComponent + ".tmp-\(getpid())"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw TrainingError.io("cannot create \(temporary): \(String(cString: strerror(errno)))") }
    var written = 0
    let ok: Bool = data.withUnsafeBytes { bytes in
        while written < bytes.count {
            let n = Foundation.write(fd, bytes.baseAddress! + written, bytes.count - written)
            if n <= 0 { return false }
            written += n
        }
        return fsync(fd) == 0
    }
    close(fd)
    guard ok, rename(temporary, path) == 0 else {
        let reason = String(cString: strerror(errno))
        unlink(temporary)
        throw TrainingError.io("cannot write \(path): \(reason)")
    }
    let dir = open(folder, O_RDONLY)
    if dir >= 0 { fsync(dir); close(dir) }
}
