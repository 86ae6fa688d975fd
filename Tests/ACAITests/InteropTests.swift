import ACAI
import ACAIData
import ACAIModels
import ACAITestSupport
import ACAITraining
import Foundation
import XCTest

/// safetensors and .npy: round trips, the byte layout the specifications ask for, and refusal of bad files
/// (every prefix and random corruptions of a real file never trap).
final class InteropTests: XCTestCase {
    func folder() throws -> String {
        let dir = NSTemporaryDirectory() + "acai-interop-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func model(_ kind: ModelKind, seed: UInt64, config: ModelConfig? = nil) throws -> any Autoencoder {
        try makeModel(kind, config: config ?? ModelTests.tinyConfig(kind), seed: seed, on: TestDevices.cpu)
    }

    // MARK: safetensors

    func testSafetensorsByteLayoutFollowsTheSpecification() throws {
        let file = SafetensorsFile(tensors: [
            .init(name: "a/w", shape: [2, 3], values: [1, 2, 3, 4, 5, -6.5]),
            .init(name: "b", shape: [1], values: [.pi]),
            .init(name: "empty", shape: [0, 4], values: []),
        ], metadata: ["k": "v"])
        let bytes = try file.encoded()
        let n = bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        XCTAssertEqual((8 + Int(n)) % 8, 0, "data must start on an 8-byte boundary")
        XCTAssertEqual(bytes.count, 8 + Int(n) + 7 * 4)
        let header = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + Int(n))])) as? [String: Any])
        let a = try XCTUnwrap(header["a/w"] as? [String: Any])
        XCTAssertEqual(a["dtype"] as? String, "F32")
        XCTAssertEqual(a["shape"] as? [Int], [2, 3])
        XCTAssertEqual(a["data_offsets"] as? [Int], [0, 24])
        XCTAssertEqual((header["b"] as? [String: Any])?["data_offsets"] as? [Int], [24, 28])
        XCTAssertEqual(header["__metadata__"] as? [String: String], ["k": "v"])
        // -6.5 little-endian at bytes 20..<24 of the data.
        let data = Array(bytes[(8 + Int(n))...])
        XCTAssertEqual(Array(data[20..<24]), [0x00, 0x00, 0xD0, 0xC0])
        let back = try SafetensorsFile.decode(bytes, file: "mem")
        XCTAssertEqual(back.metadata, ["k": "v"])
        XCTAssertEqual(back.tensor("a/w"), file.tensors[0])
        XCTAssertEqual(back.tensor("b")?.values, [.pi])
        XCTAssertEqual(back.tensor("empty")?.shape, [0, 4])
    }

    func testModelRoundTripReconstructsIdentically() throws {
        for kind in [ModelKind.acai, .vqvae] {
            let dir = try folder()
            let source = try model(kind, seed: 3)
            let path = dir + "/m.safetensors"
            try ModelWeights.export(source, samples: 1234, step: 7, to: path)
            let file = try SafetensorsFile.read(path)
            XCTAssertEqual(file.metadata["acai.model"], kind.rawValue)
            XCTAssertEqual(file.metadata["acai.samples"], "1234")
            let config = try JSONDecoder().decode(ModelConfig.self, from: Data(try XCTUnwrap(file.metadata["acai.config"]).utf8))
            XCTAssertEqual(config, source.config)
            XCTAssertEqual(file.tensors.count, source.parameters.count + source.buffers.count)
            XCTAssertEqual(file.tensor("encoder/conv0/w")?.shape, [1, 1, 1, 4], "HWIO as stored")

            let target = try model(kind, seed: 99)
            XCTAssertFalse(try target.parameters[0].toArray() == source.parameters[0].toArray())
            try ModelWeights.load(path, into: target)
            for (p, q) in zip(source.parameters, target.parameters) {
                XCTAssertTrue(try p.toArray() == q.toArray(), p.name)
            }
            for (p, q) in zip(source.buffers, target.buffers) {
                XCTAssertTrue(try p.tensor.toArray() == q.tensor.toArray(), p.name)
            }
            var rng = SeededGenerator(seed: 4)
            let batch = ModelTests.batch(4, rng: &rng)
            let x = try Tensor(shape: [4, 8, 8, 1], values: batch.images, on: TestDevices.cpu)
            var r1 = RandomStream(seed: 1), r2 = RandomStream(seed: 1)
            XCTAssertTrue(try source.reconstruct(x, random: &r1).toArray() == target.reconstruct(x, random: &r2).toArray())
        }
    }

    func testLoadRefusesOtherKindMissingTensorWrongShapeAndExtraTensorsAndLeavesModelUnchanged() throws {
        let dir = try folder()
        let ae = try model(.ae, seed: 3)
        let good = try ModelWeights.file(of: ae, samples: 0, step: 0)
        func attempt(_ file: SafetensorsFile, into target: any Autoencoder, expect fragments: [String]) throws {
            let path = dir + "/bad-\(UUID().uuidString).safetensors"
            try file.write(to: path)
            let before = try target.parameters.map { try $0.toArray() }
            XCTAssertThrowsError(try ModelWeights.load(path, into: target)) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(path), text)
                for f in fragments { XCTAssertTrue(text.contains(f), "'\(f)' not in: \(text)") }
            }
            XCTAssertTrue(try target.parameters.map { try $0.toArray() } == before, "a refused file must not change the model")
        }
        try attempt(good, into: try model(.acai, seed: 1), expect: ["kind 'ae'", "'acai'"])

        var missing = good
        missing.tensors.removeAll { $0.name == "decoder/conv1/b" }
        try attempt(missing, into: try model(.ae, seed: 1), expect: ["decoder/conv1/b", "missing"])

        var noKind = good
        noKind.metadata = [:]
        XCTAssertEqual(noKind.tensors[2].shape.count, 4)
        noKind.tensors[2] = .init(name: noKind.tensors[2].name, shape: [noKind.tensors[2].values.count], values: noKind.tensors[2].values)
        try attempt(noKind, into: try model(.ae, seed: 1), expect: [good.tensors[2].name, "shape"])

        var extra = good
        extra.tensors.append(.init(name: "critic/conv0/w", shape: [1], values: [0]))
        try attempt(extra, into: try model(.ae, seed: 1), expect: ["critic/conv0/w", "not a tensor"])

        var wider = ModelTests.tinyConfig(.ae)
        wider.net.depth = 8
        try attempt(good, into: try model(.ae, seed: 1, config: wider), expect: ["encoder/conv0/w", "[1, 1, 1, 4]", "[1, 1, 1, 8]"])
    }

    /// A header that lies about sizes: each is refused with a message naming the file (and the tensor).
    func testHeaderLiesAreRefused() throws {
        func file(header: String, data: Int) -> [UInt8] {
            var json = Array(header.utf8)
            while json.count % 8 != 0 { json.append(0x20) }
            var out: [UInt8] = []
            withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
            return out + json + [UInt8](repeating: 0, count: data)
        }
        let cases: [(String, [UInt8], [String])] = [
            ("length past end", [0xFF, 0, 0, 0, 0, 0, 0, 0] + Array("{}".utf8), ["header length 255"]),
            ("huge length", [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], ["100 MB"]),
            ("offsets past data", file(header: #"{"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: 8), ["'t'", "outside"]),
            ("shape vs bytes", file(header: #"{"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: 8), ["'t'", "needs 12 bytes"]),
            ("overlap", file(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: 8), ["overlaps"]),
            ("hole", file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: 8), ["'a'", "belong to no tensor"]),
            ("trailing bytes", file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: 8), ["cover 4 bytes", "holds 8"]),
            ("dtype", file(header: #"{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#, data: 4), ["'a'", "F16"]),
            ("overflowing shape", file(header: #"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#, data: 4), ["'a'", "overflows"]),
            ("fractional shape", file(header: #"{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, data: 4), ["'a'", "shape"]),
            ("not json", file(header: "{not json", data: 0), ["JSON"]),
            ("metadata", file(header: #"{"__metadata__":{"k":3}}"#, data: 0), ["__metadata__"]),
            ("short", [1, 2, 3], ["too short"]),
        ]
        for (name, bytes, fragments) in cases {
            XCTAssertThrowsError(try SafetensorsFile.decode(bytes, file: "lie.safetensors"), name) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains("lie.safetensors"), "\(name): \(text)")
                for f in fragments { XCTAssertTrue(text.contains(f), "\(name): '\(f)' not in: \(text)") }
            }
        }
    }

    func testReaderNeverTrapsOnPrefixesOrCorruptions() throws {
        let bytes = try ModelWeights.file(of: try model(.ae, seed: 2), samples: 0, step: 0).encoded()
        XCTAssertNoThrow(try SafetensorsFile.decode(bytes, file: "ok"))
        for length in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 997)) {
            XCTAssertThrowsError(try SafetensorsFile.decode(Array(bytes.prefix(length)), file: "cut"), "prefix \(length)")
        }
        var rng = SeededGenerator(seed: TestRandom.seed(self))
        let headerEnd = 8 + Int(bytes[0]) + Int(bytes[1]) << 8
        for _ in 0..<300 {
            var copy = bytes
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                copy[Int.random(in: 0..<headerEnd, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            _ = try? SafetensorsFile.decode(copy, file: "fuzz")  // must return or throw, never trap
        }
    }

    func testTrainerInitStartsFromTheFileAndRefusesBadOnesWithoutWritingTheRunFolder() throws {
        let dir = try folder()
        let source = try model(.ae, seed: 11)
        let path = dir + "/w.safetensors"
        try ModelWeights.export(source, samples: 64, step: 8, to: path)
        var o = TrainOptions(model: .ae, config: ModelTests.tinyConfig(.ae), out: dir + "/run")
        o.batch = 8
        o.kimg = 16.0 / 1024
        o.evalKimg = 16.0 / 1024
        o.progressSeconds = 1e9
        o.initFrom = path
        let trainer = try Trainer(options: o, device: TestDevices.cpu, data: TinyData(seed: 1), log: { _ in }, progress: { _ in })
        for (p, q) in zip(source.parameters, trainer.model.parameters) { XCTAssertTrue(try p.toArray() == q.toArray(), p.name) }
        try trainer.run()
        let saved = try TrainOptions.load(runFolder: dir + "/run")
        XCTAssertEqual(saved.initFrom, path)

        var bad = o
        bad.model = .acai
        bad.config = ModelTests.tinyConfig(.acai)
        bad.out = dir + "/refused"
        XCTAssertThrowsError(try Trainer(options: bad, device: TestDevices.cpu, data: TinyData(seed: 1), log: { _ in }, progress: { _ in })) {
            XCTAssertTrue("\($0)".contains(path), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/refused"), "a refused --init must write nothing")
    }

    // MARK: .npy

    func testNpyLayoutAndRoundTrip() throws {
        let values: [Float] = (0..<15).map { Float($0) * 0.5 - 3 }
        let bytes = try NumPy.encode(.init(shape: [5, 3], values: .float32(values)))
        XCTAssertEqual(Array(bytes[0..<8]), [0x93] + Array("NUMPY".utf8) + [1, 0])
        let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        XCTAssertEqual((10 + headerLength) % 64, 0)
        let header = String(decoding: bytes[10..<(10 + headerLength)], as: UTF8.self)
        XCTAssertTrue(header.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (5, 3), }"), header)
        XCTAssertTrue(header.hasSuffix("\n"))
        XCTAssertEqual(bytes.count, 10 + headerLength + 60)
        XCTAssertEqual(try NumPy.decode(bytes, file: "m"), .init(shape: [5, 3], values: .float32(values)))
        let labels: [Int64] = [3, -1, 9, 1 << 40]
        let lb = try NumPy.encode(.init(shape: [4], values: .int64(labels)))
        XCTAssertTrue(String(decoding: lb[10..<74], as: UTF8.self).contains("'shape': (4,)"))
        XCTAssertEqual(try NumPy.decode(lb, file: "l"), .init(shape: [4], values: .int64(labels)))
        for length in 0..<lb.count { XCTAssertThrowsError(try NumPy.decode(Array(lb.prefix(length)), file: "cut")) }
        var rng = SeededGenerator(seed: TestRandom.seed(self))
        for _ in 0..<500 {
            var copy = bytes
            for _ in 0..<Int.random(in: 1...4, using: &rng) { copy[Int.random(in: 0..<74, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            _ = try? NumPy.decode(copy, file: "fuzz")  // returns or throws, never traps
        }
        let lie = Array("{'descr': '<f4', 'fortran_order': False, 'shape': (9223372036854775807, 9), }\n".utf8)
        let huge = Array(bytes.prefix(8)) + [UInt8(lie.count), 0] + lie
        XCTAssertThrowsError(try NumPy.decode(huge, file: "huge")) {
            XCTAssertTrue("\($0)".contains("overflows"), "\($0)")
        }
    }

    /// numpy.load reads the files, when this machine's python3 has NumPy (optional: skipped otherwise).
    func testNumpyLoadsTheFiles() throws {
        let dir = try folder()
        let values: [Float] = (0..<12).map { Float($0) / 4 }
        try NumPy.write(.init(shape: [4, 3], values: .float32(values)), to: dir + "/latents.npy")
        try NumPy.write(.init(shape: [4], values: .int64([2, 0, 1, 7])), to: dir + "/labels.npy")
        let script = """
        import numpy as np
        z = np.load('\(dir)/latents.npy'); y = np.load('\(dir)/labels.npy')
        assert z.dtype == np.float32 and z.shape == (4, 3), (z.dtype, z.shape)
        assert y.dtype == np.int64 and y.tolist() == [2, 0, 1, 7], y
        assert np.array_equal(z.ravel(), np.arange(12, dtype=np.float32) / 4)
        print('ok')
        """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import numpy"]
        process.standardError = FileHandle.nullDevice
        // Under CI the image's python3 with NumPy must be there: a missing one fails instead of skipping.
        let required = ProcessInfo.processInfo.environment["CI"] != nil
        guard (try? process.run()) != nil else {
            if required { XCTFail("CI: python3 is needed to read the .npy files with numpy.load"); return }
            throw XCTSkip("no python3")
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            if required { XCTFail("CI: python3 has no numpy, needed to read the .npy files with numpy.load"); return }
            throw XCTSkip("python3 has no numpy")
        }
        let check = Process()
        check.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        check.arguments = ["python3", "-c", script]
        let out = Pipe()
        check.standardOutput = out
        try check.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        check.waitUntilExit()
        XCTAssertEqual(check.terminationStatus, 0)
        XCTAssertEqual(text.trimmingCharacters(in: .whitespacesAndNewlines), "ok")
    }
}
