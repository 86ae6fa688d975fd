import ACAI

/// Adversarially Constrained Autoencoder Interpolation (Berthelot et al. 2018).
///
/// A critic sees decoded interpolants x̂_α = g(α·z + (1−α)·z_rev) (z_rev: the batch reversed, α ~ U[0, 1]
/// folded to [0, 0.5]) and regresses α; the autoencoder learns to make it answer 0:
///   critic:      mean((d(x̂_α) − α)²) + mean(d(γ·x + (1−γ)·x̂)²)
///   autoencoder: mean((x − x̂)²) + λ·mean(d(x̂_α)²)
/// Both are differentiated from the same forward pass, each with respect to its own parameters.
public final class ACAIModel: CoreAutoencoder {
    public let kind = ModelKind.acai
    public let core: AutoencoderCore
    public let critic: Encoder
    public let criticAdam: Adam

    public init(config: ModelConfig, seed: UInt64, on device: any Device) throws {
        core = try AutoencoderCore(config: config, seed: seed, on: device)
        var criticShape = config.net
        criticShape.depth = config.advDepth ?? config.net.depth
        critic = try Encoder(name: "critic", shape: criticShape, seed: mixSeeds(seed, 0xC817), on: device)
        criticAdam = try Adam(parameters: critic.parameters, learningRate: config.learningRate)
    }

    public var parameters: [Parameter] { core.autoencoderParameters + critic.parameters + core.probe.parameters }
    public var optimizers: [(name: String, adam: Adam)] {
        [("autoencoder", core.adam), ("critic", criticAdam), ("probe", core.probeAdam)]
    }

    public func trainStep(_ x: Tensor, labels: Tensor, random: inout RandomStream) throws -> [String: Tensor] {
        let n = x.shape[0]
        let z = try core.encoder(x)
        let u = try random.tensor([n, 1, 1, 1], .uniform, on: device)
        let alpha = try 0.5 - (u - 0.5).abs()
        let mixed = try alpha * z + (1 - alpha) * z.reversed(axis: 0)
        // The decoder runs once on [z; mixed] and the critic once on [x̂_α; blend]: every layer is per-sample,
        // so the values are those of separate passes, with half the launches.
        let decoded = try core.decoder(Tensor.concat([z, mixed]))
        let reconstruction = try decoded.detached().slice(0..<n), decodedMix = try decoded.slice(n..<(2 * n))
        let blend = try (reconstruction + (x - reconstruction) * config.reg).detached()
        // The critic's score of an image is the mean of its output; the losses on it are one op each.
        let criticOutput = try critic(Tensor.concat([decodedMix, blend]))

        let lossReconstruction = try decoded.squaredErrorMean(target: x, samples: 0..<n)
        let lossAEAdversarial = try criticOutput.squaredErrorMean(samples: 0..<n, perSampleMean: true)
        let lossAE = try lossReconstruction + lossAEAdversarial * config.advWeight
        let lossCriticMix = try criticOutput.squaredErrorMean(target: alpha.reshaped([n]).detached(), samples: 0..<n,
                                                              perSampleMean: true)
        let lossCriticReal = try criticOutput.squaredErrorMean(samples: n..<(2 * n), perSampleMean: true)
        let lossCritic = try lossCriticMix + lossCriticReal

        // Both gradients from the same forward pass, before either update.
        try core.adam.computeGradients(of: lossAE)
        try criticAdam.computeGradients(of: lossCritic)
        try core.adam.applyGradients()
        try criticAdam.applyGradients()
        return [
            "loss_ae": lossAE, "loss_ae_l2": lossReconstruction, "loss_ae_disc": lossAEAdversarial,
            "loss_disc": lossCritic, "loss_disc_mix": lossCriticMix, "loss_disc_real": lossCriticReal,
            "loss_probe": try core.probeStep(z, labels: labels),
        ]
    }
}
