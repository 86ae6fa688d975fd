import ACAIDevice
import Foundation

/// 2×2 average pooling and nearest-neighbour upsampling (NHWC), each parallel over output rows; the
/// channel run of a pixel is the vectorised inner loop.
enum CPUPool {
    /// `s` describes x ([n, 2h, 2w, c]); y is [n, h, w, c].
    static func avgPool(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ s: ImageShape,
                        _ parallel: Parallel) {
        let oh = s.height / 2, ow = s.width / 2, c = s.channels
        let rows = s.batch * oh
        let rowFloats = s.width * c
        forRows(rows, floatsPerRow: ow * c * 4, parallel) { row in
            let src = x + 2 * row * rowFloats  // (n, 2i) is row 2·(n·oh + i) of x
            let dst = y + row * ow * c
            for j in 0..<ow {
                let p00 = src + 2 * j * c, p01 = p00 + c, p10 = p00 + rowFloats, p11 = p10 + c
                let o = dst + j * c
                for k in 0..<c { o[k] = ((p00[k] + p01[k]) + (p10[k] + p11[k])) * 0.25 }
            }
        }
    }

    /// `s` describes dx ([n, 2h, 2w, c]); dy is [n, h, w, c].
    static func avgPoolBackward(_ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ s: ImageShape,
                                _ parallel: Parallel) {
        let ow = s.width / 2, c = s.channels
        let rowFloats = s.width * c
        forRows(s.batch * s.height, floatsPerRow: rowFloats, parallel) { row in
            let src = dy + (row / 2) * ow * c
            let dst = dx + row * rowFloats
            for j in 0..<s.width {
                let g = src + (j / 2) * c, o = dst + j * c
                for k in 0..<c { o[k] = g[k] * 0.25 }
            }
        }
    }

    /// `s` describes x ([n, h, w, c]); y is [n, 2h, 2w, c].
    static func upsample(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ s: ImageShape,
                         _ parallel: Parallel) {
        let c = s.channels, ow = 2 * s.width
        forRows(s.batch * 2 * s.height, floatsPerRow: ow * c, parallel) { row in
            let src = x + (row / 2) * s.width * c
            let dst = y + row * ow * c
            for j in 0..<ow { (dst + j * c).update(from: src + (j / 2) * c, count: c) }
        }
    }

    /// `s` describes dx ([n, h, w, c]); dy is [n, 2h, 2w, c].
    static func upsampleBackward(_ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ s: ImageShape,
                                 _ parallel: Parallel) {
        let c = s.channels, w = s.width
        let dyRow = 2 * w * c
        forRows(s.batch * s.height, floatsPerRow: 4 * w * c, parallel) { row in
            let src = dy + 2 * row * dyRow
            let dst = dx + row * w * c
            for j in 0..<w {
                let p00 = src + 2 * j * c, p01 = p00 + c, p10 = p00 + dyRow, p11 = p10 + c
                let o = dst + j * c
                for k in 0..<c { o[k] = (p00[k] + p01[k]) + (p10[k] + p11[k]) }
            }
        }
    }

    private static func forRows(_ rows: Int, floatsPerRow: Int, _ parallel: Parallel, _ body: (Int) -> Void) {
        parallel.chunks(rows, serialLimit: max(1, Parallel.serialLimit / max(floatsPerRow, 1)), align: 1) { r in
            for row in r { body(row) }
        }
    }
}
