import CPNG
import Foundation

public enum ImageError: Error, CustomStringConvertible, Sendable {
    case unreadable(path: String, reason: String)
    case unwritable(path: String, reason: String)
    case badShape(String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): return "cannot read image \(path): \(reason)"
        case let .unwritable(path, reason): return "cannot write image \(path): \(reason)"
        case let .badShape(message): return message
        }
    }
}

/// An 8-bit image, row-major, `channels` interleaved (1 = grey, 3 = RGB).
public struct Image8: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        self.width = width; self.height = height; self.channels = channels; self.pixels = pixels
    }
}

/// PNG files through libpng's simplified API.
public enum PNG {
    /// Writes `image` to `path` atomically (a temporary file in the same folder, then rename).
    public static func write(_ image: Image8, to path: String) throws {
        guard [1, 3].contains(image.channels), image.pixels.count == image.width * image.height * image.channels,
              image.width > 0, image.height > 0 else {
            throw ImageError.badShape("PNG \(path): \(image.pixels.count) bytes for \(image.width)x\(image.height)x\(image.channels)")
        }
        var png = png_image()
        png.version = png_uint_32(PNG_IMAGE_VERSION)
        png.width = png_uint_32(image.width)
        png.height = png_uint_32(image.height)
        png.format = image.channels == 1 ? formatGray : formatRGB
        let temporary = path + ".tmp-\(getpid())"
        let ok = image.pixels.withUnsafeBytes { bytes in
            png_image_write_to_file(&png, temporary, 0, bytes.baseAddress, png_int_32(image.width * image.channels), nil)
        }
        guard ok != 0 else {
            let reason = messageText(png)
            unlink(temporary)
            throw ImageError.unwritable(path: path, reason: reason)
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw ImageError.unwritable(path: path, reason: reason)
        }
    }

    /// The largest image read (8192 x 8192): a bound on what a PNG's header can make `decode` allocate.
    public static let maximumPixels = 1 << 26

    /// Reads a PNG as 8-bit grey (`channels` 1) or RGB (`channels` 3), converting as libpng does.
    public static func read(_ path: String, channels: Int = 1) throws -> Image8 {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "unreadable" : "no such file"
            throw ImageError.unreadable(path: path, reason: reason)
        }
        return try decode([UInt8](data), channels: channels, file: path)
    }

    /// Decodes the bytes of a PNG file as 8-bit grey (`channels` 1) or RGB (`channels` 3); errors name `file`.
    public static func decode(_ bytes: [UInt8], channels: Int = 1, file path: String) throws -> Image8 {
        guard channels == 1 || channels == 3 else {
            throw ImageError.badShape("PNG \(path): \(channels) channels asked for; 1 (grey) or 3 (RGB) are supported")
        }
        // libpng reads from `raw` until png_image_finish_read returns: both calls stay inside this closure.
        return try bytes.withUnsafeBytes { raw in
            var png = png_image()
            png.version = png_uint_32(PNG_IMAGE_VERSION)
            guard png_image_begin_read_from_memory(&png, raw.baseAddress, raw.count) != 0 else {
                throw ImageError.unreadable(path: path, reason: "not a PNG file (\(messageText(png)))")
            }
            png.format = channels == 1 ? formatGray : formatRGB
            let width = Int(png.width), height = Int(png.height)
            // Deflate expands at most 1032:1 and every row holds a filter byte and at least a bit per pixel:
            // a header claiming more pixels than the file can hold is refused before anything is allocated.
            let rawBytes = height * (1 + (width + 7) / 8)
            guard width * height <= PNG.maximumPixels, rawBytes <= 1032 * raw.count else {
                png_image_free(&png)
                throw ImageError.unreadable(path: path, reason: "IHDR width x height \(width)x\(height) is "
                    + (width * height > PNG.maximumPixels ? "more than the \(PNG.maximumPixels) pixels accepted"
                                                          : "more than the \(raw.count) bytes of the file can hold"))
            }
            var pixels = [UInt8](repeating: 0, count: width * height * channels)
            let ok = pixels.withUnsafeMutableBytes { out in
                png_image_finish_read(&png, nil, out.baseAddress, png_int_32(width * channels), nil)
            }
            guard ok != 0 else {
                let reason = messageText(png)
                png_image_free(&png)
                throw ImageError.unreadable(path: path, reason: "corrupt PNG data (\(reason))")
            }
            return Image8(width: width, height: height, channels: channels, pixels: pixels)
        }
    }
}

/// libpng's error text from a `png_image`.
private func messageText(_ image: png_image) -> String {
    var message = image.message
    return withUnsafeBytes(of: &message) { raw -> String in
        let bytes: [UInt8] = Array(raw.prefix { $0 != 0 })
        return String(decoding: bytes, as: UTF8.self)
    }
}

// PNG_FORMAT_GRAY and PNG_FORMAT_RGB (= PNG_FORMAT_FLAG_COLOR) are nested macros Swift does not import.
private let formatGray: png_uint_32 = 0
private let formatRGB: png_uint_32 = 2
