import ACAI
import ACAIModels
import Foundation

/// The paper's interpolation protocol (reference `make_sample_grid_and_save(ops, 64, 0, 16, 256)`):
/// encode 2·`pairs` test images, interpolate linearly between the codes of images i and pairs+i in `steps`
/// steps (both ends included, z_t = (z_a·(steps−1−t) + z_b·t)/(steps−1)), decode, and score.
public struct InterpolationProtocol: Sendable {
    public var pairs: Int = 256
    public var steps: Int = 16
    public var batch: Int = 256

    public init(pairs: Int = 256, steps: Int = 16, batch: Int = 256) {
        self.pairs = pairs; self.steps = steps; self.batch = batch
    }

    public struct Result {
        /// [pairs, steps, h, w, c] row-major: one row per interpolation.
        public var linear: [Float]
        /// Spherical interpolation of the same codes, same layout.
        public var slerp: [Float]
        public var imageShape: [Int]
    }

    /// `images` holds at least 2·pairs images [n, h, w, c].
    public func interpolate(_ model: any Autoencoder, images: Tensor, random: inout RandomStream) throws -> Result {
        let n = 2 * pairs
        guard images.shape[0] >= n else {
            throw DeviceError.invalidArgument("interpolation needs \(n) test images, got \(images.shape[0])")
        }
        let x = try images.slice(0..<n)
        var codes: [Tensor] = []
        for start in stride(from: 0, to: n, by: batch) {
            codes.append(try model.encode(x.slice(start..<min(start + batch, n)), random: &random))
        }
        let z = try Tensor.concat(codes)
        let a = try z.slice(0..<pairs), b = try z.slice(pairs..<n)
        let denominator = Float(steps - 1)
        var linear: [Tensor] = [], spherical: [Tensor] = []
        // Slerp weights per pair: ω = arccos(a·b / (|a||b|)).
        let flatA = try a.flattened(), flatB = try b.flattened()
        let dots = try (flatA * flatB).sum(axes: [1]).toArray()
        let normsA = try flatA.square().sum(axes: [1]).toArray(), normsB = try flatB.square().sum(axes: [1]).toArray()
        let omega = (0..<pairs).map { i -> Double in
            acos(max(-1, min(1, Double(dots[i]) / (Double(normsA[i]) * Double(normsB[i])).squareRoot())))
        }
        var weightShape = a.shape.map { _ in 1 }
        weightShape[0] = pairs
        for t in 0..<steps {
            linear.append(try (a * (Float(steps - 1 - t) / denominator) + b * (Float(t) / denominator)))
            let s = Double(t) / Double(steps - 1)
            let wa = omega.map { Float(sin((1 - s) * $0) / sin($0)) }, wb = omega.map { Float(sin(s * $0) / sin($0)) }
            let ta = try Tensor(shape: weightShape, values: wa, on: z.device)
            let tb = try Tensor(shape: weightShape, values: wb, on: z.device)
            spherical.append(try a * ta + b * tb)
        }
        func decodeAll(_ parts: [Tensor]) throws -> [Float] {
            // Decoded in step-major order; reordered to one row per interpolation.
            let all = try Tensor.concat(parts)
            var out: [Tensor] = []
            for start in stride(from: 0, to: all.shape[0], by: batch) {
                out.append(try model.decode(all.slice(start..<min(start + batch, all.shape[0]))))
            }
            let decoded = try Tensor.concat(out)
            let perImage = decoded.count / decoded.shape[0]
            let flat = try decoded.toArray()
            var rows = [Float](repeating: 0, count: flat.count)
            for t in 0..<steps {
                for p in 0..<pairs {
                    let src = (t * pairs + p) * perImage, dst = (p * steps + t) * perImage
                    rows.replaceSubrange(dst..<dst + perImage, with: flat[src..<src + perImage])
                }
            }
            return rows
        }
        return Result(linear: try decodeAll(linear), slerp: try decodeAll(spherical),
                      imageShape: Array(images.shape.dropFirst()))
    }
}

/// Accuracy (%) of the model's latent probe on labelled images.
public func probeAccuracy(_ model: any Autoencoder, images: Tensor, labels: [Int], batch: Int = 256) throws -> Double {
    let n = images.shape[0]
    guard labels.count == n, n > 0 else {
        throw DeviceError.invalidArgument("probe accuracy: \(labels.count) labels for \(n) images")
    }
    var correct = 0
    for start in stride(from: 0, to: n, by: batch) {
        let end = min(start + batch, n)
        let predicted = try model.probeLogits(images.slice(start..<end)).argmax(axis: 1).toArray()
        for (i, p) in predicted.enumerated() where Int(p) == labels[start + i] { correct += 1 }
    }
    return 100 * Double(correct) / Double(n)
}
