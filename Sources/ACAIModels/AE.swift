import ACAI

/// The plain autoencoder ("Baseline"): mean squared reconstruction error.
public final class AE: CoreAutoencoder {
    public let kind = ModelKind.ae
    public let core: AutoencoderCore

    public init(config: ModelConfig, seed: UInt64, on device: any Device) throws {
        core = try AutoencoderCore(config: config, seed: seed, on: device)
    }

    public func trainStep(_ x: Tensor, labels: Tensor, random: inout RandomStream) throws -> [String: Tensor] {
        let z = try core.encoder(x)
        let loss = try meanSquaredError(core.decoder(z), x)
        try core.autoencoderStep(loss)
        return ["loss_ae": loss, "loss_probe": try core.probeStep(z, labels: labels)]
    }
}
