import ACAI

/// Autoencoder with dropout on the latent code during training only (keep probability 0.5 by default,
/// inverted scaling as `tf.nn.dropout`); interpolation and the probe see the code without dropout.
public final class DropoutAE: Autoencoder {
    public let kind = ModelKind.dropout
    public let core: AutoencoderCore

    public init(config: ModelConfig, seed: UInt64, on device: any Device) throws {
        core = try AutoencoderCore(config: config, seed: seed, on: device)
    }

    public var config: ModelConfig { core.config }
    public var device: any Device { core.device }
    public var parameters: [Parameter] { core.autoencoderParameters + core.probe.parameters }
    public var optimizers: [(name: String, adam: Adam)] { [("autoencoder", core.adam), ("probe", core.probeAdam)] }
    public var buffers: [(name: String, tensor: Tensor)] { [] }

    public func trainStep(_ x: Tensor, labels: Tensor, random: inout RandomStream) throws -> [String: Tensor] {
        let z = try core.encoder(x)
        let mask = try random.tensor(z.shape, .dropout(keep: config.dropoutKeep), on: device)
        let loss = try meanSquaredError(core.decoder(z * mask), x)
        try core.autoencoderStep(loss)
        return ["loss_ae": loss, "loss_probe": try core.probeStep(z, labels: labels)]
    }

    public func encode(_ x: Tensor, random: inout RandomStream) throws -> Tensor { try core.encoder(x).detached() }
    public func decode(_ z: Tensor) throws -> Tensor { try core.decoder(z.detached()).detached() }
    public func probeLogits(_ x: Tensor) throws -> Tensor { try core.probe(core.encoder(x).detached().flattened()).detached() }
}
