/// Parameterised layers shared by every model. Initialisation follows the reference: "He modified"
/// normal weights, zero biases. Seeds make initialisation identical on every device.

/// 3×3 or 1×1 convolution, stride 1, 'same' padding, with bias. Filter HWIO.
public struct Conv2D {
    public let weight: Parameter
    public let bias: Parameter

    public init(name: String, inChannels: Int, outChannels: Int, kernel: Int, seed: UInt64,
                on device: any Device) throws {
        weight = Parameter(name: "\(name)/w", try Initializer.heModified(
            [kernel, kernel, inChannels, outChannels], fanIn: kernel * kernel * inChannels, seed: seed, on: device))
        bias = Parameter(name: "\(name)/b", try Tensor.zeros([outChannels], on: device))
    }

    /// act(conv(x, weight) + bias), the activation fused into the convolution (one launch each way).
    public func callAsFunction(_ x: Tensor, activation: Activation = .identity) throws -> Tensor {
        try x.conv2d(weight.value, bias: bias.value, activation: activation)
    }

    public var parameters: [Parameter] { [weight, bias] }
}

/// Fully connected layer on [n, features].
public struct Dense {
    public let weight: Parameter
    public let bias: Parameter

    public init(name: String, inFeatures: Int, outFeatures: Int, seed: UInt64, on device: any Device) throws {
        weight = Parameter(name: "\(name)/w", try Initializer.heModified(
            [inFeatures, outFeatures], fanIn: inFeatures, seed: seed, on: device))
        bias = Parameter(name: "\(name)/b", try Tensor.zeros([outFeatures], on: device))
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.matmul(weight.value) + bias.value }

    public var parameters: [Parameter] { [weight, bias] }
}

/// Hands out disjoint (seed, offset) ranges of the counter-based generator, so every random draw
/// (initialisation, noise, dropout masks, mixing coefficients) is reproducible and resumable.
public struct RandomStream: Sendable, Codable, Equatable {
    public let seed: UInt64
    public private(set) var offset: UInt64
    /// In a data-parallel run: the rows of the global batch this process trains. Every draw is then per
    /// sample (its first axis is the local batch) and takes the values the same draw of a single process
    /// gives those rows, so the shards together draw exactly the single process's numbers. Not checkpointed:
    /// the stream's position is the same for any number of processes.
    public var shard: BatchShard?

    enum CodingKeys: String, CodingKey { case seed, offset }

    public init(seed: UInt64, offset: UInt64 = 0) {
        self.seed = seed
        self.offset = offset
    }

    /// Reserves `count` values and returns the offset of the first.
    public mutating func take(_ count: Int) -> UInt64 {
        defer { offset &+= UInt64(count) }
        return offset
    }

    /// A draw of the given shape and distribution.
    public mutating func tensor(_ shape: [Int], _ distribution: RandomDistribution,
                                on device: any Device) throws -> Tensor {
        // Normals read two counters per element from a derived seed, so they never overlap the uniform
        // counters of the same stream.
        let drawSeed = distribution == .normal ? normalSeed : seed
        guard let shard, shard.ranks > 1 else {
            return try Tensor.random(shape, distribution, seed: drawSeed, offset: take(shape.reduce(1, *)), on: device)
        }
        guard let rows = shape.first, rows == shard.localBatch else {
            throw DeviceError.invalidArgument(
                "a data-parallel step drew random numbers of shape \(shape), which are not per sample of its batch of \(shard.localBatch)")
        }
        let rowSize = shape.dropFirst().reduce(1, *)
        let start = take(shard.globalBatch * rowSize)
        let parts = try shard.blocks.map { block in
            try Tensor.random([block.count] + shape.dropFirst(), distribution, seed: drawSeed,
                              offset: start &+ UInt64(block.lowerBound * rowSize), on: device)
        }
        return parts.count == 1 ? parts[0] : try Tensor.concat(parts)
    }

    /// The seed of this stream's normal draws.
    public var normalSeed: UInt64 { mixSeeds(seed, 0x4E4F_524D_414C) }

    /// Skips `count` values (a replayed step drew them on the device).
    public mutating func advance(by count: UInt64) { offset &+= count }

    /// A new independent seed for a sub-component (e.g. one per layer).
    public mutating func nextSeed() -> UInt64 { mixSeeds(seed, take(1)) }
}

/// A 64-bit seed derived from two values (SplitMix64 finaliser of their combination).
public func mixSeeds(_ a: UInt64, _ b: UInt64) -> UInt64 {
    var z = a ^ (b &+ 0x9E37_79B9_7F4A_7C15 &+ (a << 6) &+ (a >> 2))
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

extension Dense {
    /// Glorot-uniform weights (TensorFlow's default for dense layers), zero bias.
    public init(name: String, inFeatures: Int, outFeatures: Int, glorotSeed seed: UInt64, on device: any Device) throws {
        let limit = (6 / Float(inFeatures + outFeatures)).squareRoot()
        let u = try Tensor.random([inFeatures, outFeatures], .uniform, seed: seed, on: device)
        self.init(weight: Parameter(name: "\(name)/w", try u * (2 * limit) - limit),
                  bias: Parameter(name: "\(name)/b", try Tensor.zeros([outFeatures], on: device)))
    }

    public init(weight: Parameter, bias: Parameter) {
        self.weight = weight
        self.bias = bias
    }
}
