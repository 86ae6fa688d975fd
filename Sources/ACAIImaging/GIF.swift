import CGIF
import Foundation

/// Animated GIFs through giflib: frames of one size, grey (a 256-level grey palette, exact) or RGB (a fixed
/// 6×7×6 colour cube of 252 colours, nearest colour, no dithering), looping forever (the NETSCAPE2.0
/// extension), each frame shown for `delay` hundredths of a second.
public enum GIF {
    /// Writes `frames` to `path` atomically (a temporary file in the same folder, then rename).
    public static func write(_ frames: [Image8], delay: Int = 10, to path: String) throws {
        guard let first = frames.first else { throw ImageError.badShape("GIF \(path): no frames") }
        let (width, height, channels) = (first.width, first.height, first.channels)
        guard width > 0, height > 0, width <= 65535, height <= 65535, channels == 1 || channels == 3 else {
            throw ImageError.badShape("GIF \(path): frames must be 1 to 65535 pixels wide and high, grey or RGB; got \(width)x\(height)x\(channels)")
        }
        for (i, f) in frames.enumerated() where f.width != width || f.height != height || f.channels != channels
            || f.pixels.count != width * height * channels {
            throw ImageError.badShape("GIF \(path): frame \(i) is \(f.width)x\(f.height)x\(f.channels), frame 0 is \(width)x\(height)x\(channels)")
        }
        var palette = [GifColorType](repeating: GifColorType(Red: 0, Green: 0, Blue: 0), count: 256)
        if channels == 1 {
            for i in 0..<256 { palette[i] = GifColorType(Red: UInt8(i), Green: UInt8(i), Blue: UInt8(i)) }
        } else {
            for r in 0..<6 { for g in 0..<7 { for b in 0..<6 {
                palette[(r * 7 + g) * 6 + b] = GifColorType(Red: UInt8(r * 51), Green: UInt8((g * 255 + 3) / 6), Blue: UInt8(b * 51))
            } } }
        }
        let temporary = path + ".tmp-\(getpid())"
        var error: Int32 = 0
        guard let gif = EGifOpenFileName(temporary, false, &error) else {
            throw ImageError.unwritable(path: path, reason: message(error))
        }
        var closed = false
        func fail(_ what: String) -> ImageError {
            let code = gif.pointee.Error
            if !closed { EGifCloseFile(gif, nil); closed = true }
            unlink(temporary)
            return ImageError.unwritable(path: path, reason: "\(what): \(message(code))")
        }
        guard let map = palette.withUnsafeBufferPointer({ GifMakeMapObject(256, $0.baseAddress) }) else {
            throw fail("cannot make the colour map")
        }
        defer { GifFreeMapObject(map) }
        EGifSetGifVersion(gif, true)
        guard EGifPutScreenDesc(gif, Int32(width), Int32(height), 8, 0, map) == GIF_OK else { throw fail("screen descriptor") }
        var loop: [UInt8] = Array("NETSCAPE2.0".utf8)
        var count: [UInt8] = [1, 0, 0]
        guard EGifPutExtensionLeader(gif, APPLICATION_EXT_FUNC_CODE) == GIF_OK,
              EGifPutExtensionBlock(gif, 11, &loop) == GIF_OK,
              EGifPutExtensionBlock(gif, 3, &count) == GIF_OK,
              EGifPutExtensionTrailer(gif) == GIF_OK else { throw fail("loop extension") }
        var line = [GifPixelType](repeating: 0, count: width)
        for f in frames {
            var control = GraphicsControlBlock(DisposalMode: DISPOSE_DO_NOT, UserInputFlag: false,
                                               DelayTime: Int32(max(0, min(delay, 65535))), TransparentColor: NO_TRANSPARENT_COLOR)
            var extensionBytes = [GifByteType](repeating: 0, count: 4)
            let length = EGifGCBToExtension(&control, &extensionBytes)
            guard EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, Int32(length), &extensionBytes) == GIF_OK else { throw fail("frame delay") }
            guard EGifPutImageDesc(gif, 0, 0, Int32(width), Int32(height), false, nil) == GIF_OK else { throw fail("image descriptor") }
            for y in 0..<height {
                for x in 0..<width {
                    let p = (y * width + x) * channels
                    if channels == 1 {
                        line[x] = f.pixels[p]
                    } else {
                        let r = (Int(f.pixels[p]) * 5 + 127) / 255, g = (Int(f.pixels[p + 1]) * 6 + 127) / 255
                        let b = (Int(f.pixels[p + 2]) * 5 + 127) / 255
                        line[x] = GifPixelType((r * 7 + g) * 6 + b)
                    }
                }
                guard EGifPutLine(gif, &line, Int32(width)) == GIF_OK else { throw fail("image data") }
            }
        }
        closed = true
        guard EGifCloseFile(gif, &error) == GIF_OK else {
            unlink(temporary)
            throw ImageError.unwritable(path: path, reason: message(error))
        }
        chmod(temporary, 0o644)  // giflib creates its file 0600; the other pictures of a run are 0644
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw ImageError.unwritable(path: path, reason: reason)
        }
    }

    /// The frames of a GIF as RGB images (each through its own or the global colour map; frames must cover
    /// the whole screen), and each frame's delay in hundredths of a second.
    public static func read(_ path: String) throws -> (frames: [Image8], delays: [Int]) {
        var error: Int32 = 0
        guard let gif = DGifOpenFileName(path, &error) else { throw ImageError.unreadable(path: path, reason: message(error)) }
        defer { DGifCloseFile(gif, nil) }
        guard DGifSlurp(gif) == GIF_OK else { throw ImageError.unreadable(path: path, reason: message(gif.pointee.Error)) }
        let width = Int(gif.pointee.SWidth), height = Int(gif.pointee.SHeight)
        var frames: [Image8] = [], delays: [Int] = []
        for i in 0..<Int(gif.pointee.ImageCount) {
            guard let saved = gif.pointee.SavedImages?[i] else { break }
            let d = saved.ImageDesc
            guard d.Left == 0, d.Top == 0, Int(d.Width) == width, Int(d.Height) == height,
                  let map = d.ColorMap ?? gif.pointee.SColorMap, let colors = map.pointee.Colors, let raster = saved.RasterBits else {
                throw ImageError.unreadable(path: path, reason: "frame \(i) does not cover the \(width)x\(height) screen or has no colour map")
            }
            let colorCount = Int(map.pointee.ColorCount)
            var pixels = [UInt8](repeating: 0, count: width * height * 3)
            for k in 0..<(width * height) {
                let index = Int(raster[k])
                guard index < colorCount else { throw ImageError.unreadable(path: path, reason: "frame \(i): colour index \(index) past its \(colorCount)-colour map") }
                let c = colors[index]
                pixels[3 * k] = c.Red; pixels[3 * k + 1] = c.Green; pixels[3 * k + 2] = c.Blue
            }
            frames.append(Image8(width: width, height: height, channels: 3, pixels: pixels))
            var control = GraphicsControlBlock()
            delays.append(DGifSavedExtensionToGCB(gif, Int32(i), &control) == GIF_OK ? Int(control.DelayTime) : 0)
        }
        return (frames, delays)
    }

    static func message(_ code: Int32) -> String {
        GifErrorString(code).map { String(cString: $0) } ?? "giflib error \(code)"
    }
}
