import ACAI

/// Denoising autoencoder: Gaussian noise (std 1.0 by default, on pixels in [-1, 1]) is added to the input
/// during training; the loss is the squared error to the clean image. Encoding for interpolation is clean.
public final class DenoisingAE: CoreAutoencoder {
    public let kind = ModelKind.denoising
    public let core: AutoencoderCore

    public init(config: ModelConfig, seed: UInt64, on device: any Device) throws {
        core = try AutoencoderCore(config: config, seed: seed, on: device)
    }

    public func trainStep(_ x: Tensor, labels: Tensor, random: inout RandomStream) throws -> [String: Tensor] {
        let noise = try random.tensor(x.shape, .normal, on: device)
        let z = try core.encoder(x + noise * config.noiseStd)
        let loss = try meanSquaredError(core.decoder(z), x)
        try core.autoencoderStep(loss)
        // The probe sees the clean code, as in the reference (it classifies `encode(x)`).
        return ["loss_ae": loss, "loss_probe": try core.probeStep(core.encoder(x), labels: labels)]
    }
}
