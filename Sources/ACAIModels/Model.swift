import ACAI

/// The seven autoencoders of the paper, by their command-line names.
public enum ModelKind: String, CaseIterable, Codable, Sendable {
    case acai, ae, dropout, denoising, vae, aae, vqvae

    /// The column title used in the paper's tables.
    public var paperName: String {
        switch self {
        case .ae: return "Baseline"
        case .dropout: return "Dropout"
        case .denoising: return "Denoising"
        case .vae: return "VAE"
        case .aae: return "AAE"
        case .vqvae: return "VQ-VAE"
        case .acai: return "ACAI"
        }
    }
}

/// Every hyperparameter of every model; defaults are the reference's (brain-research/acai run scripts for
/// lines32). Each model reads the fields that concern it.
public struct ModelConfig: Codable, Sendable, Equatable {
    public var net: ConvNetShape
    public var learningRate: Float = 1e-4
    /// Classes of the latent probe (10 for lines, MNIST, SVHN, CIFAR-10).
    public var classes: Int = 10
    /// Dropout AE: probability of keeping a latent value during training.
    public var dropoutKeep: Float = 0.5
    /// Denoising AE: standard deviation of the Gaussian input noise.
    public var noiseStd: Float = 1.0
    /// VAE: weight of the KL term.
    public var vaeBeta: Float = 1.0
    /// AAE: hidden layer sizes of the discriminator MLP.
    public var aaeHidden: [Int] = [100, 100]
    /// VQ-VAE: log2 of the codebook size, discrete latents per example, EMA decay, commitment weight,
    /// and the width of the dense layer after the bottleneck.
    public var vqCodebookLog2: Int = 14
    public var vqLatents: Int = 10
    public var vqDecay: Float = 0.999
    public var vqCommitment: Float = 10
    public var vqHidden: Int = 512
    /// ACAI: λ (weight of the critic term in the autoencoder loss), γ (mix of data and reconstruction shown
    /// to the critic), and the critic's depth (nil: the autoencoder's depth).
    public var advWeight: Float = 0.5
    public var reg: Float = 0.2
    public var advDepth: Int? = nil

    public init(net: ConvNetShape) { self.net = net }

    /// The reference's run-script defaults for a 32×32 dataset with `colors` channels: MNIST and
    /// Fashion-MNIST depth 16, SVHN, CelebA and CIFAR-10 depth 64; latent width 4 and 16 latent channels
    /// (256 dimensions; `--latent 2` gives the paper's 32-dimensional setting).
    public static func images(_ kind: ModelKind, colors: Int, depth: Int) -> ModelConfig {
        ModelConfig(net: ConvNetShape(width: 32, colors: colors, depth: depth, latent: 16, latentWidth: 4))
    }

    /// The reference's lines32 setting: depth 16, latent 16, latent width 2 (VQ-VAE: latent width 4).
    public static func lines32(_ kind: ModelKind) -> ModelConfig {
        ModelConfig(net: ConvNetShape(width: 32, colors: 1, depth: 16, latent: 16, latentWidth: kind == .vqvae ? 4 : 2))
    }
}

/// A trainable autoencoder. Images are NHWC in [-1, 1].
public protocol Autoencoder: AnyObject {
    var kind: ModelKind { get }
    var config: ModelConfig { get }
    var device: any Device { get }
    /// Every trained parameter (checkpoints save them in this order).
    var parameters: [Parameter] { get }
    /// Each optimiser with a name, for checkpoints and logs.
    var optimizers: [(name: String, adam: Adam)] { get }
    /// State that is not a parameter but must be checkpointed (e.g. the VQ-VAE's EMA codebook).
    var buffers: [(name: String, tensor: Tensor)] { get }

    /// One training step on a batch: updates every parameter and all state in place and returns the scalar
    /// losses (on the device, read back only when logged). `labels` are one-hot [n, classes] for the latent
    /// probe. A step must not read device values on the host, and must draw its random numbers from `random`
    /// only: `StepPlan` records it once and replays its ops.
    func trainStep(_ x: Tensor, labels: Tensor, random: inout RandomStream) throws -> [String: Tensor]
    /// The latent code used for interpolation and clustering, [n, ...].
    func encode(_ x: Tensor, random: inout RandomStream) throws -> Tensor
    /// Images from latent codes.
    func decode(_ z: Tensor) throws -> Tensor
    /// Logits of the latent probe for a batch of images, [n, classes].
    func probeLogits(_ x: Tensor) throws -> Tensor
    /// Makes this model one replica of a data-parallel run: its optimisers average their gradients over
    /// `replicas` before each update, and state that is not a gradient (VQ-VAE's code statistics) is reduced
    /// over them too. Each step then trains on the shard of the batch that `random.shard` names.
    func join(replicas: any Collective)
}

extension Autoencoder {
    public func join(replicas: any Collective) { joinOptimizers(replicas) }

    /// Every optimiser averages its gradients over `replicas` (the part of `join` all models share).
    public func joinOptimizers(_ replicas: any Collective) {
        for (name, adam) in optimizers {
            adam.replicas = replicas
            adam.name = "\(name) gradients"
        }
    }
}

extension Autoencoder {
    public func reconstruct(_ x: Tensor, random: inout RandomStream) throws -> Tensor {
        try decode(encode(x, random: &random))
    }
}

/// Parts every model shares: the reference encoder and decoder, their Adam, and the single-layer latent
/// classifier trained on the stop-gradient latent with its own Adam (as in the reference).
public final class AutoencoderCore {
    public let config: ModelConfig
    public let device: any Device
    public let encoder: Encoder
    public let decoder: Decoder
    public let probe: Dense
    public let adam: Adam
    public let probeAdam: Adam

    /// `extra` parameters are trained with the encoder and decoder by the same optimiser.
    public init(config: ModelConfig, probeInputs: Int? = nil, extra: [Parameter] = [], decoderLatent: Int? = nil,
                seed: UInt64, on device: any Device) throws {
        self.config = config
        self.device = device
        var random = RandomStream(seed: seed)
        encoder = try Encoder(name: "encoder", shape: config.net, seed: random.nextSeed(), on: device)
        var decoderShape = config.net
        if let decoderLatent { decoderShape.latent = decoderLatent }
        decoder = try Decoder(name: "decoder", shape: decoderShape, seed: random.nextSeed(), on: device)
        probe = try Dense(name: "probe", inFeatures: probeInputs ?? config.net.latentCount, outFeatures: config.classes,
                          glorotSeed: random.nextSeed(), on: device)
        adam = try Adam(parameters: encoder.parameters + decoder.parameters + extra, learningRate: config.learningRate)
        probeAdam = try Adam(parameters: probe.parameters, learningRate: config.learningRate)
    }

    public var autoencoderParameters: [Parameter] { adam.parameters }

    /// Trains the probe one step on `features` (detached here) and returns its loss.
    public func probeStep(_ features: Tensor, labels: Tensor) throws -> Tensor {
        let loss = try probe(features.detached().flattened()).softmaxCrossEntropy(labels: labels).mean()
        try probeAdam.minimize(loss)
        return loss
    }

    /// Updates the encoder and decoder (and extras) from `loss`.
    public func autoencoderStep(_ loss: Tensor) throws {
        try adam.minimize(loss)
    }
}

/// A model built on `AutoencoderCore`. The defaults here serve the models that differ only in their
/// training step (AE, dropout, denoising); the others override what they add.
public protocol CoreAutoencoder: Autoencoder {
    var core: AutoencoderCore { get }
}

extension CoreAutoencoder {
    public var config: ModelConfig { core.config }
    public var device: any Device { core.device }
    public var parameters: [Parameter] { core.autoencoderParameters + core.probe.parameters }
    public var optimizers: [(name: String, adam: Adam)] { [("autoencoder", core.adam), ("probe", core.probeAdam)] }
    public var buffers: [(name: String, tensor: Tensor)] { [] }

    /// The encoder's output, without gradient history.
    public func encode(_ x: Tensor, random: inout RandomStream) throws -> Tensor { try core.encoder(x).detached() }
    public func decode(_ z: Tensor) throws -> Tensor { try core.decoder(z.detached()).detached() }
    /// The probe on the flattened encoder output.
    public func probeLogits(_ x: Tensor) throws -> Tensor { try core.probe(core.encoder(x).detached().flattened()).detached() }
}

/// Mean squared error, the reference's `tf.losses.mean_squared_error` (b is the target: no gradient flows into it).
public func meanSquaredError(_ a: Tensor, _ b: Tensor) throws -> Tensor {
    guard a.shape == b.shape else { throw DeviceError.invalidArgument("meanSquaredError of \(a.shape) and \(b.shape)") }
    return try a.squaredErrorMean(target: b.detached())
}
