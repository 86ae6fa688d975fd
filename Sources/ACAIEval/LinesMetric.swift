import ACAI
import ACAIData
import Foundation

/// Mean Distance and Smoothness of interpolations on the lines benchmark, exactly as the reference
/// `lib/eval.py` (`closest_line`, `smoothness_score`, `line_eval`):
/// - every decoded image is compared by cosine distance with 10000 true lines at angles 2πk/10000; its
///   distance is the smallest one and its angle that of the closest line;
/// - per interpolation the angles are unwrapped and S = max|Δθ| / |θ_last − θ_first| − 1/(steps − 1)
///   (NaN when |θ_last − θ_first| < 1e-4);
/// - Mean Distance is the mean of all distances; Smoothness the sum of the non-NaN S divided by the
///   number of interpolations.
///
/// The 10000×1024 similarity search runs on the device in float32; the reference computes in float64,
/// so the closest line is then re-decided in float64 on the host among the device's best match and its
/// `refineWindow` neighbours on either side (adjacent reference lines differ far more than float32
/// rounding, so the float64 winner is always among them).
public final class LinesMetric {
    public static let referenceCount = 10_000
    public let size: Int
    public let device: any Device
    public let refineWindow = 24
    /// Unit-normalised reference lines, [10000, size²], in float64 on the host and float32 on the device.
    let referenceUnit: [[Double]]
    let referenceOnDevice: Tensor
    public let referenceAngles: [Double]

    public init(size: Int = 32, on device: any Device) throws {
        self.size = size
        self.device = device
        let n = Self.referenceCount
        referenceAngles = (0..<n).map { 2 * Double.pi * Double($0) / Double(n) }
        referenceUnit = referenceAngles.map { angle in
            let v = Lines.draw(angle: angle, height: size, width: size)
            let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return v.map { $0 / norm }
        }
        referenceOnDevice = try Tensor(shape: [n, size * size], values: referenceUnit.flatMap { $0.map(Float.init) },
                                       on: device)
    }

    public struct Closest: Sendable {
        public var distance: [Double]
        public var angle: [Double]
    }

    /// Closest true line of each image; `images` is [count, size·size] row-major in [-1, 1].
    public func closest(_ images: [Float], count: Int) throws -> Closest {
        let pixels = size * size
        guard images.count == count * pixels else {
            throw DeviceError.invalidArgument("lines metric: \(images.count) values for \(count) images of \(size)x\(size)")
        }
        let n = Self.referenceCount
        var distance = [Double](repeating: .nan, count: count)
        var angle = [Double](repeating: .nan, count: count)
        let chunk = 1024
        for start in stride(from: 0, to: count, by: chunk) {
            let rows = min(chunk, count - start)
            let slice = Array(images[(start * pixels)..<((start + rows) * pixels)])
            let q = try Tensor(shape: [rows, pixels], values: slice, on: device)
            // Cosine similarity up to the query's norm, which does not change the best reference line.
            let best = try q.matmul(referenceOnDevice, transposeB: true).argmax(axis: 1).toArray()
            for r in 0..<rows {
                let query = slice[(r * pixels)..<((r + 1) * pixels)].map(Double.init)
                let norm = query.reduce(0) { $0 + $1 * $1 }.squareRoot()
                var bestDistance = Double.infinity, bestIndex = 0
                let center = Int(best[r])
                // Candidates in increasing index order, so ties resolve to the lowest index like np.argmin.
                let candidates = Set((-refineWindow...refineWindow).map { ((center + $0) % n + n) % n }).sorted()
                for c in candidates {
                    var dot = 0.0
                    let ref = referenceUnit[c]
                    for i in 0..<pixels { dot += query[i] * ref[i] }
                    let d = 1 - dot / norm
                    if d < bestDistance { bestDistance = d; bestIndex = c }
                }
                distance[start + r] = bestDistance
                angle[start + r] = referenceAngles[bestIndex]
            }
        }
        return Closest(distance: distance, angle: angle)
    }

    public struct Score: Sendable, Codable, Equatable {
        public var meanDistance: Double
        public var smoothness: Double
    }

    /// Scores `interpolations` × `steps` images ([interpolations, steps, size, size] flattened).
    public func score(_ images: [Float], interpolations: Int, steps: Int) throws -> Score {
        let c = try closest(images, count: interpolations * steps)
        let meanDistance = c.distance.reduce(0, +) / Double(c.distance.count)
        var total = 0.0
        var allNaN = true
        for i in 0..<interpolations {
            let s = Self.smoothness(Array(c.angle[(i * steps)..<((i + 1) * steps)]))
            if !s.isNaN { total += s; allNaN = false }
        }
        return Score(meanDistance: meanDistance, smoothness: allNaN ? .nan : total / Double(interpolations))
    }

    /// The reference `smoothness_score` of one interpolation's angles.
    public static func smoothness(_ angles: [Double]) -> Double {
        guard angles.count >= 2 else { return .nan }
        let u = unwrap(angles)
        let total = Swift.abs(u[0] - u[u.count - 1])
        if total < 1e-4 { return .nan }
        var largest = 0.0
        for i in 1..<u.count { largest = max(largest, Swift.abs(u[i] - u[i - 1]) / total) }
        return largest - 1 / Double(u.count - 1)
    }

    /// NumPy's `unwrap` with the default discontinuity π and period 2π.
    public static func unwrap(_ p: [Double]) -> [Double] {
        guard p.count > 1 else { return p }
        var out = [p[0]]
        var correction = 0.0
        for i in 1..<p.count {
            let dd = p[i] - p[i - 1]
            // ddmod = mod(dd + π, 2π) − π, with NumPy's mod (sign of the divisor); ±π keeps the sign of dd.
            var ddmod = (dd + .pi).truncatingRemainder(dividingBy: 2 * .pi)
            if ddmod < 0 { ddmod += 2 * .pi }
            ddmod -= .pi
            if ddmod == -.pi && dd > 0 { ddmod = .pi }
            if Swift.abs(dd) >= .pi { correction += ddmod - dd }
            out.append(p[i] + correction)
        }
        return out
    }
}
