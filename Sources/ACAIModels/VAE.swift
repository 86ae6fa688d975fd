import ACAI

/// Variational autoencoder (reference `vae.py`): the flattened encoder output feeds two dense layers giving
/// μ and log σ² (same size); z = μ + σ·ε is decoded to Bernoulli logits of (x+1)/2; the loss is −ELBO =
/// (Σ cross-entropy + β·KL) / batch. Reconstructions and decodings are 2σ(logits) − 1; interpolation uses
/// the sampled z; the probe sees the encoder output before the dense layers.
public final class VAE: CoreAutoencoder {
    public let kind = ModelKind.vae
    public let core: AutoencoderCore
    public let mean: Dense
    public let logVariance: Dense

    public init(config: ModelConfig, seed: UInt64, on device: any Device) throws {
        let n = config.net.latentCount
        mean = try Dense(name: "vae/mu", inFeatures: n, outFeatures: n, glorotSeed: mixSeeds(seed, 0x6D75), on: device)
        logVariance = try Dense(name: "vae/logvar", inFeatures: n, outFeatures: n, glorotSeed: mixSeeds(seed, 0x6C76),
                                on: device)
        core = try AutoencoderCore(config: config, extra: mean.parameters + logVariance.parameters, seed: seed, on: device)
    }

    /// (μ, log σ², sampled z in the encoder's shape) for a batch.
    func posterior(_ h: Tensor, random: inout RandomStream) throws -> (Tensor, Tensor, Tensor) {
        let flat = try h.flattened()
        let mu = try mean(flat), logVar = try logVariance(flat)
        let eps = try random.tensor(mu.shape, .normal, on: device)
        let z = try mu + (logVar * 0.5).exp() * eps
        return (mu, logVar, try z.reshaped(h.shape))
    }

    public func trainStep(_ x: Tensor, labels: Tensor, random: inout RandomStream) throws -> [String: Tensor] {
        let n = Float(x.shape[0])
        let h = try core.encoder(x)
        let (mu, logVar, z) = try posterior(h, random: &random)
        let logits = try core.decoder(z)
        let target = try (x + 1) * 0.5
        let negativeLogLikelihood = try logits.sigmoidCrossEntropy(labels: target).sum() / n
        let kl = try ((logVar.exp() + mu.square() - logVar - 1).sum() * 0.5) / n
        let loss = try negativeLogLikelihood + kl * config.vaeBeta
        try core.autoencoderStep(loss)
        return ["loss_vae": loss, "loss_ll": try -negativeLogLikelihood, "loss_kl": kl,
                "loss_probe": try core.probeStep(h, labels: labels)]
    }

    public func encode(_ x: Tensor, random: inout RandomStream) throws -> Tensor {
        try posterior(core.encoder(x), random: &random).2.detached()
    }

    public func decode(_ z: Tensor) throws -> Tensor { try (core.decoder(z.detached()).sigmoid() * 2 - 1).detached() }
}
