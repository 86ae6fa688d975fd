import Foundation

/// The synthetic lines benchmark of the paper: 32×32 grey images of a line from the centre at a random
/// angle, drawn exactly as the reference `lib/data.py` `draw_line` (anti-aliased by fractional pixel
/// coverage, stroke width 2, end point at radius size/2 − 1), values in [-1, 1].
public enum Lines {
    /// Renders one line at `angle` radians into a `height`×`width` image (row-major), in float64.
    public static func draw(angle: Double, height: Int = 32, width: Int = 32, stroke w: Double = 2) -> [Double] {
        var m = [Double](repeating: 0, count: height * width)
        var x0 = Double(height) * 0.5
        var y0 = Double(width) * 0.5
        var x1 = x0 + (x0 - 1) * cos(-angle)
        var y1 = y0 + (y0 - 1) * sin(-angle)
        var flip = false
        if Swift.abs(y0 - y1) < Swift.abs(x0 - x1) {
            (x0, x1, y0, y1) = (y0, y1, x0, x1)
            flip = true
        }
        if y1 < y0 { (x0, x1, y0, y1) = (x1, x0, y1, y0) }
        x0 -= w / 2
        x1 -= w / 2
        let dx = x1 - x0, dy = y1 - y0
        let ds = dy != 0 ? dx / dy : 0
        let yi = (Int(ceil(y0)), Int(y1))  // Python int() truncates toward zero, as Int() does
        // (row, first column, end column (exclusive), weight); a single pixel is a one-column range.
        var points: [(Int, Int, Int, Double)] = []
        for y in Int(y0)..<max(Int(y0), Int(ceil(y1))) {
            let weight: Double
            if y < yi.0 { weight = Double(yi.0) - y0 } else if y > yi.1 { weight = y1 - Double(yi.1) } else { weight = 1 }
            let xs = x0 + (Double(y) - y0 - 0.5) * ds
            let xe = xs + w
            let xi = (Int(ceil(xs)), Int(xe))
            if xi.0 != xi.1 { points.append((y, xi.0, xi.1, weight)) }
            if Double(xi.0) != xs { points.append((y, Int(xs), Int(xs) + 1, weight * (Double(xi.0) - xs))) }
            if Double(xi.1) != xe { points.append((y, xi.1, xi.1 + 1, weight * (xe - Double(xi.1)))) }
        }
        for (a, start, end, z) in points {
            // NumPy indexing: a slice is clipped to the axis, a negative single index wraps around.
            let isSlice = end != start + 1 || start < 0
            let span = flip ? height : width
            var lo = start, hi = end
            if isSlice {
                if lo < 0 { lo = max(lo + span, 0) }
                if hi < 0 { hi = max(hi + span, 0) }
                lo = min(lo, span); hi = min(hi, span)
            } else if lo < 0 { lo += span; hi = lo + 1 }
            guard lo < hi else { continue }
            for b in lo..<hi {
                let (row, col) = flip ? (b, a) : (a, b)
                let (r, c) = (row < 0 ? row + height : row, col < 0 ? col + width : col)
                guard (0..<height).contains(r), (0..<width).contains(c) else { continue }
                m[r * width + c] += 2 * z
            }
        }
        return m.map { Swift.min(Swift.max($0 - 1, -1), 1) }
    }

    /// Float32 image of one line.
    public static func image(angle: Double, size: Int = 32) -> [Float] { draw(angle: angle, height: size, width: size).map(Float.init) }

    /// The label of the reference generator: int(10·angle / (2π)), 10 classes.
    public static func label(angle: Double) -> Int { Swift.min(Int(10 * angle / (2 * Double.pi)), 9) }
}

/// A seeded stream of random lines (angle = 2π·U[0, 1)), the infinite training set of the reference.
public struct LinesGenerator: Sendable {
    public let size: Int
    private var state: UInt64

    public init(seed: UInt64, size: Int = 32) {
        self.size = size
        self.state = seed
    }

    /// The generator's position, for checkpoints.
    public var position: UInt64 { state }
    public init(size: Int = 32, position: UInt64) {
        self.size = size
        self.state = position
    }

    /// SplitMix64 step → uniform in [0, 1) with 53 bits.
    private mutating func nextUniform() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) * 0x1p-53
    }

    /// `count` images as [count, size, size, 1] floats, with their angles and labels.
    public mutating func batch(_ count: Int) -> (images: [Float], angles: [Double], labels: [Int]) {
        var images: [Float] = []
        images.reserveCapacity(count * size * size)
        var angles: [Double] = [], labels: [Int] = []
        for _ in 0..<count {
            let angle = 2 * Double.pi * nextUniform()
            images += Lines.image(angle: angle, size: size)
            angles.append(angle)
            labels.append(Lines.label(angle: angle))
        }
        return (images, angles, labels)
    }

    /// The rows `rows` (in that order) of the batch `batch(count)` would give, rendering only those: the
    /// generator moves past all `count` lines, as `batch(count)` moves it.
    public mutating func batch(_ count: Int, rows: [Range<Int>]) -> (images: [Float], labels: [Int]) {
        let angles = (0..<count).map { _ in 2 * Double.pi * nextUniform() }
        var images: [Float] = [], labels: [Int] = []
        for range in rows {
            for i in range where angles.indices.contains(i) {
                images += Lines.image(angle: angles[i], size: size)
                labels.append(Lines.label(angle: angles[i]))
            }
        }
        return (images, labels)
    }
}
