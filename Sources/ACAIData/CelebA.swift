import CJPEGShim
import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A decoded 8-bit RGB image.
public struct RGBImage: Sendable {
    public let width: Int
    public let height: Int
    /// Interleaved RGB, row-major: pixel (y, x) channel c at `(y·width + x)·3 + c`.
    public let pixels: [UInt8]
}

/// JPEG decoding through libjpeg(-turbo), via the C shim that keeps libjpeg's longjmp inside C.
public enum JPEG {
    /// The inverse DCT used by the decoder.
    public enum DCTMethod: Sendable {
        /// JDCT_IFAST: TensorFlow's default for `decode_jpeg`/`decode_image`, which the reference uses.
        case fast
        /// JDCT_ISLOW: libjpeg's own default (djpeg, Pillow).
        case accurate
    }

    /// Decodes the JPEG file at `path` to RGB.
    public static func decode(file path: String, dct: DCTMethod = .fast) throws -> RGBImage {
        try decode(FileIO.readAll(path), dct: dct, file: path)
    }

    /// Decodes JPEG bytes to RGB; errors name `file`.
    public static func decode(_ data: [UInt8], dct: DCTMethod = .fast, file: String) throws -> RGBImage {
        var pixels: UnsafeMutablePointer<UInt8>?
        var width: Int32 = 0, height: Int32 = 0, channels: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let rc = data.withUnsafeBufferPointer { buffer in
            message.withUnsafeMutableBufferPointer { msg in
                acai_jpeg_decode(buffer.baseAddress, buffer.count, dct == .accurate ? 1 : 0, &pixels,
                                 &width, &height, &channels, msg.baseAddress, msg.count)
            }
        }
        defer { acai_jpeg_free(pixels) }
        guard rc == 0, let pixels else {
            let text = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw DatasetError.jpegDecode(file: file, message: text.isEmpty ? "unknown libjpeg error" : text)
        }
        let count = Int(width) * Int(height) * Int(channels)
        return RGBImage(width: Int(width), height: Int(height),
                        pixels: Array(UnsafeBufferPointer(start: pixels, count: count)))
    }
}

extension JPEG {
    /// Encodes 8-bit grey (`channels` 1) or RGB (3) interleaved pixels, rows top to bottom, as a baseline JPEG.
    public static func encode(pixels: [UInt8], width: Int, height: Int, channels: Int, quality: Int = 95) throws -> [UInt8] {
        guard width > 0, height > 0, channels == 1 || channels == 3, pixels.count == width * height * channels,
              width <= Int(Int32.max), height <= Int(Int32.max) else {
            throw DatasetError.invalidFormat(file: "(JPEG being encoded)", reason: "\(pixels.count) bytes for \(width)x\(height)x\(channels)")
        }
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: 256)
        let rc = pixels.withUnsafeBufferPointer { buffer in
            message.withUnsafeMutableBufferPointer { msg in
                acai_jpeg_encode(buffer.baseAddress, Int32(width), Int32(height), Int32(channels), Int32(quality),
                                 &out, &size, msg.baseAddress, msg.count)
            }
        }
        defer { acai_jpeg_free(out) }
        guard rc == 0, let out else {
            let text = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw DatasetError.jpegDecode(file: "(JPEG being encoded)", message: text)
        }
        return Array(UnsafeBufferPointer(start: out, count: size))
    }
}

/// TensorFlow 1's `tf.image.resize_bicubic(images, size)` with its defaults align_corners = False and (for
/// TF ≥ 1.14) half_pixel_centers = False, i.e. the legacy kernel that the reference ran:
/// - scale = in_size / out_size (Float), source coordinate of output index o = o·scale (no half-pixel shift),
///   i = ⌊o·scale⌋, t = o·scale − i;
/// - cubic convolution with a = −0.75 (the legacy table; Keys' a = −0.5 is only used with half-pixel centres),
///   weights looked up in a 1025-entry table at round(t·1024) exactly as TensorFlow does;
/// - taps i−1 … i+2 clamped to the image (edge pixels repeat), weights not renormalised;
/// - vertical pass over the four rows first, then horizontal, in Float, as TensorFlow's cached kernel.
public enum Bicubic {
    static let tableSize = 1024

    /// TensorFlow's `InitCoeffsTable(-0.75)`: entry 2i is W(i/1024), entry 2i+1 is W(i/1024 + 1).
    static let table: [Float] = {
        let a = -0.75
        var t = [Float](repeating: 0, count: (tableSize + 1) * 2)
        for i in 0...tableSize {
            var x = Float(Double(i) * 1.0 / Double(tableSize))
            t[i * 2] = Float(((a + 2) * Double(x) - (a + 3)) * Double(x) * Double(x) + 1)
            x = Float(Double(x) + 1.0)
            t[i * 2 + 1] = Float(((a * Double(x) - 5 * a) * Double(x) + 8 * a) * Double(x) - 4 * a)
        }
        return t
    }()

    struct Taps {
        var index: (Int, Int, Int, Int)
        var weight: (Float, Float, Float, Float)
    }

    static func taps(output: Int, scale: Float, limit: Int) -> Taps {
        let position = Float(output) * scale
        let base = Int(position.rounded(.down))
        let delta = position - Float(base)
        let offset = Int(lrintf(delta * Float(tableSize)))
        func bound(_ v: Int) -> Int { min(limit - 1, max(0, v)) }
        return Taps(index: (bound(base - 1), bound(base), bound(base + 1), bound(base + 2)),
                    weight: (table[offset * 2 + 1], table[offset * 2],
                             table[(tableSize - offset) * 2], table[(tableSize - offset) * 2 + 1]))
    }

    /// Resizes an HWC Float image to `outHeight`×`outWidth`.
    public static func resize(_ image: [Float], height: Int, width: Int, channels: Int,
                              outHeight: Int, outWidth: Int) -> [Float] {
        var out = [Float](repeating: 0, count: outHeight * outWidth * channels)
        image.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                resize(src, height: height, width: width, channels: channels, into: dst,
                       outHeight: outHeight, outWidth: outWidth)
            }
        }
        return out
    }

    static func resize(_ src: UnsafeBufferPointer<Float>, height: Int, width: Int, channels: Int,
                       into dst: UnsafeMutableBufferPointer<Float>, outHeight: Int, outWidth: Int) {
        let yScale = Float(height) / Float(outHeight), xScale = Float(width) / Float(outWidth)
        let xTaps = (0..<outWidth).map { taps(output: $0, scale: xScale, limit: width) }
        for oy in 0..<outHeight {
            let ty = taps(output: oy, scale: yScale, limit: height)
            let rows = (ty.index.0 * width, ty.index.1 * width, ty.index.2 * width, ty.index.3 * width)
            // The vertical pass at one column: the four rows' values weighted in order, in Float.
            func vertical(_ x: Int, _ c: Int) -> Float {
                src[(rows.0 + x) * channels + c] * ty.weight.0 + src[(rows.1 + x) * channels + c] * ty.weight.1
                    + src[(rows.2 + x) * channels + c] * ty.weight.2 + src[(rows.3 + x) * channels + c] * ty.weight.3
            }
            for ox in 0..<outWidth {
                let tx = xTaps[ox]
                for c in 0..<channels {
                    let v0 = vertical(tx.index.0, c), v1 = vertical(tx.index.1, c)
                    let v2 = vertical(tx.index.2, c), v3 = vertical(tx.index.3, c)
                    dst[(oy * outWidth + ox) * channels + c] = v0 * tx.weight.0 + v1 * tx.weight.1 + v2 * tx.weight.2 + v3 * tx.weight.3
                }
            }
        }
    }
}

/// CelebA as the reference's `celeba32`: each `img_align_celeba` JPEG (178 wide × 218 high) is decoded to
/// RGB (JDCT_IFAST, as TensorFlow), scaled to [−1, 1], cropped by 36 rows at the top and bottom and 16
/// columns at the left and right (146×146 for CelebA), and resized to 32×32 with TF1's legacy bicubic
/// (`Bicubic`). The result is clamped to [−1, 1]: bicubic overshoots slightly at sharp edges and the
/// reference did not clamp; this loader does so that every dataset lies in [−1, 1].
public enum CelebA {
    public static let cropRows = 36
    public static let cropColumns = 16
    public static let outputSize = 32
    public static let imageFolder = "img_align_celeba"

    /// The folder of the JPEGs: `directory/img_align_celeba` when it exists, else `directory`.
    static func imageDirectory(_ directory: String) -> String {
        let sub = FileIO.join(directory, imageFolder)
        return FileIO.isDirectory(sub) ? sub : directory
    }

    /// All `*.jpg` / `*.jpeg` files of the image folder, sorted by name.
    public static func imageFiles(directory: String) throws -> [String] {
        let folder = imageDirectory(directory)
        guard FileIO.isDirectory(folder) else {
            throw DatasetError.missingFile(path: folder, expected: "expected a folder \(imageFolder) of *.jpg files in \(directory)")
        }
        let names = try FileIO.contents(ofDirectory: folder).filter {
            let lower = $0.lowercased()
            return lower.hasSuffix(".jpg") || lower.hasSuffix(".jpeg")
        }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        guard !names.isEmpty else {
            throw DatasetError.noImages(directory: folder, expected: "expected *.jpg files (CelebA img_align_celeba)")
        }
        return names.map { FileIO.join(folder, $0) }
    }

    /// Both splits read the same images (the reference's "test" reads the training tfrecord). Unlabelled.
    static func load(split: Split, directory: String, limit: Int?) throws -> Dataset {
        var files = try imageFiles(directory: directory)
        if let limit { files = Array(files.prefix(max(0, limit))) }
        return try load(files: files)
    }

    /// Reads and preprocesses the given JPEG files, in order, decoding on all cores.
    public static func load(files: [String]) throws -> Dataset {
        let size = outputSize * outputSize * 3
        var images = [Float](repeating: 0, count: files.count * size)
        let failures = FailureBox(count: files.count)
        images.withUnsafeMutableBufferPointer { buffer in
            let shared = SendablePointer(base: buffer.baseAddress)
            let workers = max(1, min(files.count, activeProcessorCount()))
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                var index = worker
                while index < files.count {
                    do {
                        let image = try preprocess(file: files[index])
                        if let base = shared.base {
                            image.withUnsafeBufferPointer { src in
                                (base + index * size).update(from: src.baseAddress!, count: size)
                            }
                        }
                    } catch {
                        failures.set(index, error as? DatasetError ?? .jpegDecode(file: files[index], message: "\(error)"))
                    }
                    index += workers
                }
            }
        }
        if let first = failures.first() { throw first }
        return Dataset(name: DatasetName.celeba32.rawValue, images: images, labels: [], count: files.count,
                       height: outputSize, width: outputSize, channels: 3, classes: 1)
    }

    /// One image: decode, scale, crop, resize, clamp → 32×32×3 HWC in [−1, 1].
    public static func preprocess(file: String) throws -> [Float] {
        let rgb = try JPEG.decode(file: file, dct: .fast)
        return try preprocess(rgb, file: file)
    }

    /// Scale, crop and resize a decoded image; `file` names it in errors.
    public static func preprocess(_ rgb: RGBImage, file: String) throws -> [Float] {
        let h = rgb.height - 2 * cropRows, w = rgb.width - 2 * cropColumns
        guard h > 0, w > 0 else {
            throw DatasetError.imageTooSmall(file: file, height: rgb.height, width: rgb.width,
                                             minimumHeight: 2 * cropRows + 1, minimumWidth: 2 * cropColumns + 1)
        }
        let lut = byteToUnit
        var cropped = [Float](repeating: 0, count: h * w * 3)
        for y in 0..<h {
            let srcRow = ((y + cropRows) * rgb.width + cropColumns) * 3
            for k in 0..<(w * 3) { cropped[y * w * 3 + k] = lut[Int(rgb.pixels[srcRow + k])] }
        }
        var out = Bicubic.resize(cropped, height: h, width: w, channels: 3, outHeight: outputSize, outWidth: outputSize)
        for k in out.indices { out[k] = min(1, max(-1, out[k])) }
        return out
    }

    static func activeProcessorCount() -> Int {
        #if canImport(Glibc) || canImport(Musl) || canImport(Darwin)
        let n = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        return n > 0 ? n : 1
        #else
        return 1
        #endif
    }
}

/// A pointer that each worker writes to disjoint ranges of.
private struct SendablePointer: @unchecked Sendable {
    let base: UnsafeMutablePointer<Float>?
}

/// Per-file failures collected by the decoding workers.
private final class FailureBox: @unchecked Sendable {
    private var errors: [DatasetError?]
    private let lock = DispatchSemaphore(value: 1)

    init(count: Int) { errors = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ error: DatasetError) {
        lock.wait()
        errors[index] = error
        lock.signal()
    }

    /// The failure of the lowest-numbered file, so that the error does not depend on scheduling.
    func first() -> DatasetError? {
        lock.wait()
        defer { lock.signal() }
        return errors.lazy.compactMap { $0 }.first
    }
}
