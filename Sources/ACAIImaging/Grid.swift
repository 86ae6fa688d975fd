/// Grids of square tiles: the picture format of interpolations, reconstructions and samples.
public enum Grid {
    /// 8-bit value of x ∈ [-1, 1]: clip(round(127.5 + 127.5·x), 0, 255) with NumPy's round half to even.
    @inlinable
    public static func byte(_ x: Float) -> UInt8 {
        let v = (127.5 + 127.5 * Double(x)).rounded(.toNearestOrEven)
        return UInt8(Swift.min(Swift.max(v.isNaN ? 0 : v, 0), 255))
    }

    /// Lays out `rows`·`cols` tiles of `tile`×`tile`×`channels` floats (row-major, tile after tile,
    /// NHWC) as one image, row r holding tiles r·cols ..< (r+1)·cols.
    public static func image(tiles: [Float], rows: Int, cols: Int, tile: Int, channels: Int = 1) throws -> Image8 {
        let per = tile * tile * channels
        guard tiles.count == rows * cols * per else {
            throw ImageError.badShape("grid of \(rows)x\(cols) tiles of \(tile)x\(tile)x\(channels) needs \(rows * cols * per) values, got \(tiles.count)")
        }
        let width = cols * tile, height = rows * tile
        var pixels = [UInt8](repeating: 0, count: width * height * channels)
        for r in 0..<rows {
            for c in 0..<cols {
                let base = (r * cols + c) * per
                for y in 0..<tile {
                    for x in 0..<tile {
                        for ch in 0..<channels {
                            pixels[((r * tile + y) * width + c * tile + x) * channels + ch] =
                                byte(tiles[base + (y * tile + x) * channels + ch])
                        }
                    }
                }
            }
        }
        return Image8(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// Splits an image into tiles (row by row), x = p/127.5 − 1. The image size must be a multiple of the
    /// tile size; `rows`/`cols`, when given, must match it.
    public static func tiles(of image: Image8, tile: Int, rows: Int? = nil, cols: Int? = nil,
                             name: String = "image") throws -> (values: [Float], rows: Int, cols: Int) {
        guard tile > 0, image.width % tile == 0, image.height % tile == 0 else {
            throw ImageError.badShape("\(name) is \(image.width)x\(image.height) pixels, not a multiple of the \(tile)x\(tile) tile")
        }
        let r = image.height / tile, c = image.width / tile
        if let rows, rows != r {
            throw ImageError.badShape("\(name) has \(r) rows of \(tile)-pixel tiles, --rows says \(rows)")
        }
        if let cols, cols != c {
            throw ImageError.badShape("\(name) has \(c) columns of \(tile)-pixel tiles, --cols says \(cols)")
        }
        let ch = image.channels
        var values = [Float](repeating: 0, count: image.pixels.count)
        var i = 0
        for tr in 0..<r {
            for tc in 0..<c {
                for y in 0..<tile {
                    for x in 0..<tile {
                        for k in 0..<ch {
                            values[i] = Float(image.pixels[((tr * tile + y) * image.width + tc * tile + x) * ch + k]) / 127.5 - 1
                            i += 1
                        }
                    }
                }
            }
        }
        return (values, r, c)
    }
}
