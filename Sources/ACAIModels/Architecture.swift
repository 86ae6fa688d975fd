import ACAI

/// The reference encoder, decoder and critic (brain-research/acai `lib/layers.py`), NHWC.
///
/// Encoder: 1×1 conv to `depth`; per scale s < S two 3×3 convs with depth·2^s channels and leaky ReLU
/// 0.2, then 2×2 average pooling; a 3×3 conv to depth·2^S with leaky ReLU; a linear 3×3 conv to
/// `latent` channels. The decoder mirrors it with nearest-neighbour upsampling and ends with a linear
/// 3×3 conv to the colour channels. S = log2(width / latentWidth).
public struct ConvNetShape: Sendable, Equatable, Codable {
    public var width: Int
    public var colors: Int
    public var depth: Int
    public var latent: Int
    public var latentWidth: Int

    public init(width: Int, colors: Int, depth: Int, latent: Int, latentWidth: Int) {
        self.width = width; self.colors = colors; self.depth = depth
        self.latent = latent; self.latentWidth = latentWidth
    }

    public var scales: Int {
        var s = 0
        while (latentWidth << s) < width { s += 1 }
        return s
    }

    /// The latent tensor of one example: [latentWidth, latentWidth, latent].
    public var latentShape: [Int] { [latentWidth, latentWidth, latent] }
    public var latentCount: Int { latentWidth * latentWidth * latent }

    public func validate() throws {
        guard width > 0, latentWidth > 0, width % latentWidth == 0, (latentWidth << scales) == width else {
            throw DeviceError.invalidArgument("latent width \(latentWidth) must divide image width \(width) by a power of two")
        }
        guard depth > 0, latent > 0, colors > 0 else {
            throw DeviceError.invalidArgument("depth, latent and colors must be positive (got \(depth), \(latent), \(colors))")
        }
    }
}

/// The reference's leaky ReLU (slope 0.2), fused into the convolution it follows.
let leaky = Activation.leakyRelu(alpha: 0.2)

/// The convolutions of an encoder or decoder, in order.
struct ConvStack {
    let convs: [Conv2D]

    var parameters: [Parameter] { convs.flatMap(\.parameters) }
}

public struct Encoder {
    public let shape: ConvNetShape
    let stack: ConvStack

    /// `latent` overrides the number of output channels (the critic uses its own shape and depth).
    public init(name: String, shape: ConvNetShape, latent: Int? = nil, seed: UInt64, on device: any Device) throws {
        try shape.validate()
        self.shape = shape
        var random = RandomStream(seed: seed)
        var convs: [Conv2D] = []
        func add(_ cin: Int, _ cout: Int, _ k: Int) throws {
            convs.append(try Conv2D(name: "\(name)/conv\(convs.count)", inChannels: cin, outChannels: cout, kernel: k,
                                    seed: random.nextSeed(), on: device))
        }
        let d = shape.depth
        try add(shape.colors, d, 1)
        var cin = d
        for s in 0..<shape.scales {
            try add(cin, d << s, 3)
            try add(d << s, d << s, 3)
            cin = d << s
        }
        try add(cin, d << shape.scales, 3)
        try add(d << shape.scales, latent ?? shape.latent, 3)
        stack = ConvStack(convs: convs)
    }

    public var parameters: [Parameter] { stack.parameters }

    /// [n, width, width, colors] → [n, latentWidth, latentWidth, latent]
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var y = try stack.convs[0](x)
        var i = 1
        for _ in 0..<shape.scales {
            y = try stack.convs[i](y, activation: leaky)
            y = try stack.convs[i + 1](y, activation: leaky)
            y = try y.avgPool2x2()
            i += 2
        }
        y = try stack.convs[i](y, activation: leaky)
        return try stack.convs[i + 1](y)
    }
}

public struct Decoder {
    public let shape: ConvNetShape
    let stack: ConvStack

    public init(name: String, shape: ConvNetShape, seed: UInt64, on device: any Device) throws {
        try shape.validate()
        self.shape = shape
        var random = RandomStream(seed: seed)
        var convs: [Conv2D] = []
        func add(_ cin: Int, _ cout: Int) throws {
            convs.append(try Conv2D(name: "\(name)/conv\(convs.count)", inChannels: cin, outChannels: cout, kernel: 3,
                                    seed: random.nextSeed(), on: device))
        }
        let d = shape.depth
        var cin = shape.latent
        for s in stride(from: shape.scales - 1, through: 0, by: -1) {
            try add(cin, d << s)
            try add(d << s, d << s)
            cin = d << s
        }
        try add(cin, d)
        try add(d, shape.colors)
        stack = ConvStack(convs: convs)
    }

    public var parameters: [Parameter] { stack.parameters }

    /// [n, latentWidth, latentWidth, latent] → [n, width, width, colors]
    public func callAsFunction(_ h: Tensor) throws -> Tensor {
        var y = h
        var i = 0
        for _ in 0..<shape.scales {
            y = try stack.convs[i](y, activation: leaky)
            y = try stack.convs[i + 1](y, activation: leaky)
            y = try y.upsample2x()
            i += 2
        }
        y = try stack.convs[i](y, activation: leaky)
        return try stack.convs[i + 1](y)
    }
}
