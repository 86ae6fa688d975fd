import ACAIData
import ACAIImaging
import ACAITraining
import Foundation

/// A parser of untrusted bytes as a fuzz target: `Fuzz/<name>/main.swift` hands it libFuzzer's inputs, and
/// `FuzzRegressionTests` replays the files of `Tests/Regressions/<name>/` through it.
///
/// The property checked: the parser either accepts the bytes or throws an error whose description names the
/// file (`file`); it never traps, never reads out of bounds (AddressSanitizer), never leaks and never
/// allocates what the input does not justify (libFuzzer's -rss_limit_mb / -malloc_limit_mb).
public struct FuzzTarget: Sendable {
    public let name: String
    /// The file name the bytes are parsed as; every error must mention it.
    public let file: String
    let parse: @Sendable (_ bytes: [UInt8], _ file: String) throws -> Void

    public init(name: String, file: String, parse: @escaping @Sendable (_ bytes: [UInt8], _ file: String) throws -> Void) {
        self.name = name; self.file = file; self.parse = parse
    }

    /// nil when `bytes` parse, else the error, after checking that it names the file.
    public func run(_ bytes: [UInt8]) throws -> (any Error)? {
        do {
            try parse(bytes, file)
            return nil
        } catch {
            try FuzzTarget.check(error, names: file)
            return error
        }
    }

    /// libFuzzer's LLVMFuzzerTestOneInput: an unclear error is a finding (a trap, kept as a crash input).
    public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
        let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
        do { _ = try run(bytes) } catch { fatalError("\(name): \(error)") }
        return 0
    }

    /// An error that does not say which file it is about.
    public struct UnclearError: Error, CustomStringConvertible {
        public let description: String
    }

    static func check(_ error: any Error, names file: String) throws {
        let text = "\(error)"
        guard text.contains(file) else {
            throw UnclearError(description: "error does not name \(file): \(type(of: error)): \(text)")
        }
    }
}

public enum FuzzTargets {
    /// Every target, in the order tools/fuzz.sh runs them. New formats (safetensors, .npy, image folders):
    /// add a `FuzzTarget` below, its name here, and `Fuzz/<name>/main.swift` (see Fuzz/README.md).
    public static let all: [FuzzTarget] = [idx, idxGz, mat, cifar, png, jpeg, checkpoint, json, safetensors, npy,
                                            folderCache]

    public static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }

    /// IDX (MNIST / Fashion-MNIST) as uncompressed bytes: byte 3 of the magic picks labels (1 dimension) or
    /// images (any other value: 3 dimensions); a parsed file goes through the mnist32 conversion beside a
    /// synthetic partner file of zeros.
    public static let idx = FuzzTarget(name: "idx", file: "fuzz-idx3-ubyte") { bytes, file in
        try idxDataset(bytes, file: file)
    }

    /// IDX inside gzip (`*-ubyte.gz`): gunzip, then as `idx`.
    public static let idxGz = FuzzTarget(name: "idx-gz", file: "fuzz-idx3-ubyte.gz") { bytes, file in
        try idxDataset(Gzip.decompress(bytes, format: .gzip, file: file), file: file)
    }

    /// MATLAB v5 MAT-files (SVHN's `*_32x32.mat`), then the SVHN conversion of `X` and `y`.
    public static let mat = FuzzTarget(name: "mat", file: "fuzz_32x32.mat") { bytes, file in
        let mat = try MATFile(bytes: bytes, path: file)
        for variable in mat.variables {
            guard let data = variable.data else { continue }
            for i in 0..<min(data.count, 16) { _ = data.value(at: i) }
        }
        _ = try SVHN.load(mat)
    }

    /// CIFAR-10 binary batches (`data_batch_N.bin`).
    public static let cifar = FuzzTarget(name: "cifar", file: "fuzz_batch.bin") { bytes, file in
        _ = try CIFAR10.parse(bytes, file: file)
    }

    /// PNG through libpng's simplified API, as grey and as RGB. The chunks' CRCs are recomputed first (as
    /// libpng's own fuzzer ignores them), so that mutations reach the chunks' contents.
    public static let png = FuzzTarget(name: "png", file: "fuzz.png") { bytes, file in
        let fixed = withValidCRCs(bytes)
        _ = try PNG.decode(fixed, channels: 1, file: file)
        _ = try PNG.decode(fixed, channels: 3, file: file)
    }

    /// `bytes` with the CRC of every complete chunk after the 8-byte signature set to the right value.
    static func withValidCRCs(_ bytes: [UInt8]) -> [UInt8] {
        var out = bytes, offset = 8
        while offset + 12 <= out.count {
            let length = out[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
            guard length <= out.count - offset - 12 else { break }
            var crc: UInt32 = 0xffff_ffff
            for byte in out[(offset + 4)..<(offset + 8 + length)] {
                crc ^= UInt32(byte)
                for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xedb8_8320 : crc >> 1 }
            }
            crc = ~crc
            for k in 0..<4 { out[offset + 8 + length + k] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * k)) }
            offset += 12 + length
        }
        return out
    }

    /// JPEG through libjpeg (the C shim), then CelebA's crop and bicubic resize.
    public static let jpeg = FuzzTarget(name: "jpeg", file: "fuzz.jpg") { bytes, file in
        let rgb = try JPEG.decode(bytes, dct: .fast, file: file)
        _ = try CelebA.preprocess(rgb, file: file)
    }

    /// safetensors files (`acai export`, `acai train --init`): header length, JSON header, data offsets.
    public static let safetensors = FuzzTarget(name: "safetensors", file: "fuzz.safetensors") { bytes, file in
        let decoded = try SafetensorsFile.decode(bytes, file: file)
        for t in decoded.tensors { _ = t.values.count }
    }

    /// NumPy .npy files (`acai encode`): magic, version, header dictionary, shape and dtype.
    public static let npy = FuzzTarget(name: "npy", file: "fuzz.npy") { bytes, file in
        _ = try NumPy.decode(bytes, file: file)
    }

    /// An image folder's decoded cache (`RUN/folder-cache.bin`): magic, key, JSON header, labels and pixels. The
    /// key is taken from the bytes themselves, so that inputs get past the staleness check.
    public static let folderCache = FuzzTarget(name: "folder-cache", file: "fuzz-folder-cache.bin") { bytes, file in
        let key = bytes.count >= 16 ? bytes[8..<16].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) } : 0
        _ = try ImageFolder.decodeCache(bytes, key: key, file: file, name: "folder")
    }

    /// Training checkpoints (`checkpoint.bin`): magic, header length, JSON header, values and their hash.
    public static let checkpoint = FuzzTarget(name: "checkpoint", file: "fuzz-checkpoint.bin") { bytes, file in
        _ = try Checkpoint.decode(Data(bytes), path: file)
    }

    /// A run folder's `options.json` and `summary.json`: both decoders see every input; it is an error when
    /// neither accepts it.
    public static let json = FuzzTarget(name: "json", file: "fuzz.json") { bytes, file in
        let data = Data(bytes)
        var failure: (any Error)?
        do { _ = try TrainOptions.decode(data, path: file) } catch { failure = error }
        do { _ = try RunSummary.decode(data, path: file) } catch {
            try FuzzTarget.check(error, names: file)
            if let failure { throw failure }
        }
    }

    static func idxDataset(_ bytes: [UInt8], file: String) throws {
        let labels = bytes.count > 3 && bytes[3] == 1
        let parsed = try IDX.parse(bytes, dimensions: labels ? 1 : 3, file: file)
        // The partner: as many examples as the parsed file claims, when the input could hold that many.
        let n = parsed.dimensions[0] <= bytes.count ? parsed.dimensions[0] : 0
        let partner = try IDX.parse(idxZeros(labels ? [n, 1, 1] : [n]), dimensions: labels ? 3 : 1, file: "partner")
        _ = try labels ? IDX.mnist32(images: partner, labels: parsed) : IDX.mnist32(images: parsed, labels: partner)
    }

    /// An IDX file of zeros with the given dimensions.
    static func idxZeros(_ dims: [Int]) -> [UInt8] {
        var bytes: [UInt8] = [0, 0, 8, UInt8(dims.count)]
        for d in dims { bytes += [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: d >> $0) } }
        return bytes + [UInt8](repeating: 0, count: dims.reduce(1, *))
    }
}
