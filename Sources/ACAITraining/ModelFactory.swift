import ACAI
import ACAIModels

/// Builds a model of `kind` with `config`, initialised from `seed`, on `device`.
public func makeModel(_ kind: ModelKind, config: ModelConfig, seed: UInt64, on device: any Device) throws -> any Autoencoder {
    switch kind {
    case .ae: return try AE(config: config, seed: seed, on: device)
    case .dropout: return try DropoutAE(config: config, seed: seed, on: device)
    case .denoising: return try DenoisingAE(config: config, seed: seed, on: device)
    case .vae: return try VAE(config: config, seed: seed, on: device)
    case .aae: return try AAE(config: config, seed: seed, on: device)
    case .vqvae: return try VQVAE(config: config, seed: seed, on: device)
    case .acai: return try ACAIModel(config: config, seed: seed, on: device)
    }
}
