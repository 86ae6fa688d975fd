import ACAI

/// VQ-VAE as in the reference (`vqvae.py` with tensor2tensor's discretization bottleneck, EMA variant):
/// the flattened encoder output (H values) is projected by a dense layer to `vqLatents`·H and split into
/// `vqLatents` vectors of H, each replaced by its nearest of 2^`vqCodebookLog2` codebook vectors with a
/// straight-through gradient; the commitment loss is β·mean((x − sg(q))²). The codebook follows an
/// exponential moving average (decay 0.999, Laplace-smoothed counts, ε = 1e-5) and is not trained by Adam.
/// After quantisation: dense(512, ReLU input) → dense(H, ReLU input) → the conv decoder. Interpolation and
/// clustering use the continuous pre-quantisation encoder output; the probe sees the post-bottleneck
/// dense output.
public final class VQVAE: CoreAutoencoder {
    public let kind = ModelKind.vqvae
    public let core: AutoencoderCore
    public let projection: Dense
    public let hidden: Dense
    public let output: Dense
    /// The EMA state, updated in place every step (a recorded step plan replays into the same buffers).
    public let codebook: Tensor
    public let emaCount: Tensor
    public let emaMeans: Tensor
    let codes: Int
    let epsilon: Float = 1e-5
    /// The other replicas of a data-parallel run, whose batches' code assignments the EMA counts too.
    var replicas: (any Collective)?

    public init(config: ModelConfig, seed: UInt64, on device: any Device) throws {
        let h = config.net.latentCount
        codes = 1 << config.vqCodebookLog2
        projection = try Dense(name: "vq/projection", inFeatures: h, outFeatures: h * config.vqLatents,
                               glorotSeed: mixSeeds(seed, 0x5051), on: device)
        hidden = try Dense(name: "vq/hidden", inFeatures: h * config.vqLatents, outFeatures: config.vqHidden,
                           glorotSeed: mixSeeds(seed, 0x5052), on: device)
        output = try Dense(name: "vq/output", inFeatures: config.vqHidden, outFeatures: h,
                           glorotSeed: mixSeeds(seed, 0x5053), on: device)
        core = try AutoencoderCore(config: config, probeInputs: h,
                                   extra: projection.parameters + hidden.parameters + output.parameters,
                                   seed: seed, on: device)
        // tf.uniform_unit_scaling_initializer: U(±√(3 / fan_in)) with fan_in the codebook size.
        let limit = (3 / Float(codes)).squareRoot()
        codebook = try Tensor.random([codes, h], .uniform, seed: mixSeeds(seed, 0x5054), on: device) * (2 * limit) - limit
        emaMeans = try codebook.affine(scale: 1, shift: 0)  // its own buffer: a copy, not an alias
        emaCount = try Tensor.zeros([codes], on: device)
    }

    public func join(replicas: any Collective) {
        joinOptimizers(replicas)
        self.replicas = replicas
    }

    public var buffers: [(name: String, tensor: Tensor)] {
        [("codebook", codebook), ("ema_count", emaCount), ("ema_means", emaMeans)]
    }

    struct Bottleneck {
        var dense: Tensor        // [n, H], input of the conv decoder (flattened)
        var vectors: Tensor      // [n·latents, H], pre-quantisation
        var index: Tensor        // [n·latents], the nearest code of each vector
        var oneHot: Tensor       // [n·latents, codes]
        var quantized: Tensor    // [n·latents, H]
    }

    /// The discretisation bottleneck on the flattened encoder output [n, H].
    func bottleneck(_ flat: Tensor) throws -> Bottleneck {
        let n = flat.shape[0], h = config.net.latentCount
        let vectors = try projection(flat).reshaped([n * config.vqLatents, h])
        // Nearest codebook vector by squared distance |x|² + |e|² − 2·x·e; |x|² does not change the argmin.
        let codebookNorms = try codebook.square().sum(axes: [1])
        let distances = try codebookNorms.reshaped([1, codes]) - vectors.detached().matmul(codebook, transposeB: true) * 2
        let index = try distances.argmin(axis: 1)
        let oneHot = try index.oneHot(depth: codes)
        let quantized = try codebook.gatherRows(index)
        // Straight-through: the forward value is the code vector, the gradient goes to the projection.
        let straight = try vectors + (quantized - vectors).detached()
        let dense = try output(hidden(straight.reshaped([n, h * config.vqLatents]).relu()).relu())
        return Bottleneck(dense: dense, vectors: vectors, index: index, oneHot: oneHot, quantized: quantized)
    }

    public func trainStep(_ x: Tensor, labels: Tensor, random: inout RandomStream) throws -> [String: Tensor] {
        let encoded = try core.encoder(x)
        let b = try bottleneck(encoded.flattened())
        let reconstruction = try core.decoder(b.dense.reshaped(encoded.shape))
        let lossReconstruction = try meanSquaredError(reconstruction, x)
        let lossCommitment = try meanSquaredError(b.vectors, b.quantized)
        let loss = try lossReconstruction + lossCommitment * config.vqCommitment
        try core.autoencoderStep(loss)
        try updateCodebook(b, shard: random.shard)
        return ["loss_ae": lossReconstruction, "loss_vqvae": try lossCommitment * config.vqCommitment,
                "loss_probe": try core.probeStep(b.dense, labels: labels)]
    }

    /// EMA codebook update (tensor2tensor's `discrete_bottleneck` with ema=True). In a data-parallel run the
    /// statistics are those of the global batch: every replica gathers the batch's vectors and code indices
    /// (a few hundred KB, where the sums themselves would be the codebook's size) and computes them whole.
    func updateCodebook(_ b: Bottleneck, shard: BatchShard?) throws {
        let decay = config.vqDecay
        var oneHot = b.oneHot, vectors = b.vectors.detached()
        if let replicas, replicas.isDistributed, let shard {
            let latents = config.vqLatents
            let index = try replicas.allGather(b.index.reshaped([b.index.count, 1]), shard: shard, rowsPerSample: latents,
                                               what: "the all-gather of VQ-VAE's code indices")
            oneHot = try index.reshaped([index.count]).oneHot(depth: codes)
            vectors = try replicas.allGather(vectors, shard: shard, rowsPerSample: latents,
                                             what: "the all-gather of VQ-VAE's encoder vectors")
        }
        let counts = try oneHot.sum(axes: [0])
        try (emaCount * decay + counts * (1 - decay)).copy(into: emaCount)
        let sums = try oneHot.matmul(vectors, transposeA: true)
        try (emaMeans * decay + sums * (1 - decay)).copy(into: emaMeans)
        let total = try emaCount.sum()
        let smoothed = try (emaCount + epsilon) / (total + Float(codes) * epsilon) * total
        try (emaMeans / smoothed.reshaped([codes, 1])).copy(into: codebook)
    }

    public func decode(_ z: Tensor) throws -> Tensor {
        let b = try bottleneck(z.detached().flattened())
        return try core.decoder(b.dense.reshaped(z.shape)).detached()
    }

    public func probeLogits(_ x: Tensor) throws -> Tensor {
        try core.probe(bottleneck(core.encoder(x).flattened()).dense).detached()
    }
}
