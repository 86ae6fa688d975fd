import ACAI

/// Adversarial autoencoder (reference `aae.py`): an MLP discriminator (hidden 100, 100 with leaky ReLU, one
/// logit) on the flattened latent tells codes from N(0, I) samples with sigmoid cross-entropy; the
/// autoencoder minimises MSE plus the cross-entropy of its codes labelled as prior samples. The
/// discriminator has its own Adam.
public final class AAE: CoreAutoencoder {
    public let kind = ModelKind.aae
    public let core: AutoencoderCore
    public let discriminator: [Dense]
    public let discriminatorAdam: Adam

    public init(config: ModelConfig, seed: UInt64, on device: any Device) throws {
        core = try AutoencoderCore(config: config, seed: seed, on: device)
        var layers: [Dense] = []
        var inputs = config.net.latentCount
        for (i, size) in (config.aaeHidden + [1]).enumerated() {
            layers.append(try Dense(name: "disc/dense\(i)", inFeatures: inputs, outFeatures: size,
                                    glorotSeed: mixSeeds(seed, 0xD15C + UInt64(i)), on: device))
            inputs = size
        }
        discriminator = layers
        discriminatorAdam = try Adam(parameters: layers.flatMap(\.parameters), learningRate: config.learningRate)
    }

    public var parameters: [Parameter] { core.autoencoderParameters + discriminatorAdam.parameters + core.probe.parameters }
    public var optimizers: [(name: String, adam: Adam)] {
        [("autoencoder", core.adam), ("discriminator", discriminatorAdam), ("probe", core.probeAdam)]
    }

    func logit(_ z: Tensor) throws -> Tensor {
        var h = try z.flattened()
        for (i, layer) in discriminator.enumerated() {
            h = try layer(h)
            if i < discriminator.count - 1 { h = try h.leakyRelu() }
        }
        return h
    }

    public func trainStep(_ x: Tensor, labels: Tensor, random: inout RandomStream) throws -> [String: Tensor] {
        let z = try core.encoder(x)
        let lossReconstruction = try meanSquaredError(core.decoder(z), x)
        let prior = try random.tensor(z.shape, .normal, on: device)
        // One discriminator pass on [codes; prior samples] (per-sample layers: the same values, half the launches).
        let n = x.shape[0]
        let logits = try logit(Tensor.concat([z, prior]))
        let logitLatent = try logits.slice(0..<n), logitPrior = try logits.slice(n..<(2 * n))
        let zeros = try Tensor.zeros(logitLatent.shape, on: device), ones = try Tensor.full(logitLatent.shape, 1, on: device)
        let lossAdversaryLatent = try logitLatent.sigmoidCrossEntropy(labels: zeros).mean()
        let lossAdversaryPrior = try logitPrior.sigmoidCrossEntropy(labels: ones).mean()
        let lossAELatent = try logitLatent.sigmoidCrossEntropy(labels: ones).mean()
        let lossAE = try lossReconstruction + lossAELatent
        let lossDiscriminator = try lossAdversaryPrior + lossAdversaryLatent
        try core.adam.computeGradients(of: lossAE)
        try discriminatorAdam.computeGradients(of: lossDiscriminator)
        try core.adam.applyGradients()
        try discriminatorAdam.applyGradients()
        return ["loss_ae": lossReconstruction, "loss_ae_latent": lossAELatent, "loss_adv_latent": lossAdversaryLatent,
                "loss_adv_prior": lossAdversaryPrior, "loss_probe": try core.probeStep(z, labels: labels)]
    }
}
