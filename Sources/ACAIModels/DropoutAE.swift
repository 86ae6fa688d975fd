import ACAI

/// Autoencoder with dropout on the latent code during training only (keep probability 0.5 by default,
/// inverted scaling as `tf.nn.dropout`); interpolation and the probe see the code without dropout.
public final class DropoutAE: CoreAutoencoder {
    public let kind = ModelKind.dropout
    public let core: AutoencoderCore

    public init(config: ModelConfig, seed: UInt64, on device: any Device) throws {
        core = try AutoencoderCore(config: config, seed: seed, on: device)
    }

    public func trainStep(_ x: Tensor, labels: Tensor, random: inout RandomStream) throws -> [String: Tensor] {
        let z = try core.encoder(x)
        let mask = try random.tensor(z.shape, .dropout(keep: config.dropoutKeep), on: device)
        let loss = try meanSquaredError(core.decoder(z * mask), x)
        try core.autoencoderStep(loss)
        return ["loss_ae": loss, "loss_probe": try core.probeStep(z, labels: labels)]
    }
}
