import ACAI
import ACAIImaging
import ACAIModels
import Foundation

/// The paper's picture between two images of the user's choosing: both are prepared as the folder dataset
/// would (centre-crop, bicubic to the model's size, its channels), encoded, their codes mixed linearly in
/// `steps` steps and decoded; beside it, the pixel-space cross-fade of the same two images.
public struct PairInterpolation {
    /// `steps` tiles each, NHWC floats in [−1, 1].
    public var decoded: [Float]
    public var crossFade: [Float]
    public var steps: Int
    public var size: Int
    public var channels: Int
    /// What was done to the inputs (resizing), one line per input that needed it.
    public var notes: [String]

    public init(model: any Autoencoder, from: String, to: String, steps: Int) throws {
        guard steps >= 2 else { throw TrainingError.badOption("--steps must be at least 2, got \(steps)") }
        let size = model.config.net.width, channels = model.config.net.colors
        var notes: [String] = []
        var inputs: [[Float]] = []
        for path in [from, to] {
            let image: (values: [Float], width: Int, height: Int)
            do {
                image = try ImageFolder.loadImage(path, size: size, channels: channels)
            } catch {
                throw TrainingError.badOption("\(path) is not an image acai can read (PNG or JPEG): \(error)")
            }
            if image.width != size || image.height != size {
                notes.append("\(path): \(image.width)x\(image.height) centre-cropped to \(min(image.width, image.height)) square and resized to \(size)x\(size) (bicubic), as the folder dataset does")
            }
            inputs.append(image.values)
        }
        let per = size * size * channels
        var random = RandomStream(seed: 0x1E7A)
        let x = try Tensor(shape: [2, size, size, channels], values: inputs[0] + inputs[1], on: model.device)
        let z = try model.encode(x, random: &random).toArray()
        let codeSize = z.count / 2
        let latentShape = try model.encode(try x.slice(0..<1), random: &random).shape.dropFirst()
        var mixed: [Float] = [], fade: [Float] = []
        mixed.reserveCapacity(steps * codeSize)
        for i in 0..<steps {
            let t = Float(i) / Float(steps - 1)
            for k in 0..<codeSize { mixed.append((1 - t) * z[k] + t * z[codeSize + k]) }
            for k in 0..<per { fade.append((1 - t) * inputs[0][k] + t * inputs[1][k]) }
        }
        decoded = try model.decode(try Tensor(shape: [steps] + latentShape, values: mixed, on: model.device)).toArray()
        crossFade = fade
        self.steps = steps
        self.size = size
        self.channels = channels
        self.notes = notes
    }

    /// Two rows of `steps` tiles, the decoded interpolation above the cross-fade, each pixel drawn `scale`×`scale`.
    public func strip(scale: Int = 1) throws -> Image8 {
        try Self.upscale(Grid.image(tiles: decoded + crossFade, rows: 2, cols: steps, tile: size, channels: channels), scale)
    }

    /// GIF frames there and back again: the decoded image beside the cross-fade at each step.
    public func frames(scale: Int = 1) throws -> [Image8] {
        let per = size * size * channels
        let order = Array(0..<steps) + Array((1..<(steps - 1)).reversed())
        return try order.map { i in
            let pair = Array(decoded[(i * per)..<((i + 1) * per)]) + Array(crossFade[(i * per)..<((i + 1) * per)])
            return try Self.upscale(Grid.image(tiles: pair, rows: 1, cols: 2, tile: size, channels: channels), scale)
        }
    }

    static func upscale(_ image: Image8, _ scale: Int) -> Image8 {
        guard scale > 1 else { return image }
        let w = image.width * scale, h = image.height * scale, c = image.channels
        var pixels = [UInt8](repeating: 0, count: w * h * c)
        for y in 0..<h {
            for x in 0..<w {
                for ch in 0..<c { pixels[(y * w + x) * c + ch] = image.pixels[((y / scale) * image.width + x / scale) * c + ch] }
            }
        }
        return Image8(width: w, height: h, channels: c, pixels: pixels)
    }
}
