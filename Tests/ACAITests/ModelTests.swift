import ACAI
import ACAIModels
import ACAITestSupport
import ACAITraining
import XCTest

/// Every model's training step on a tiny configuration, on both devices: the loss falls over a few dozen
/// steps on a fixed batch, and (for ACAI) the two devices give the same losses step by step.
final class ModelTests: XCTestCase {
    static func tinyConfig(_ kind: ModelKind) -> ModelConfig {
        var c = ModelConfig(net: ConvNetShape(width: 8, colors: 1, depth: 4, latent: 2, latentWidth: 2))
        c.learningRate = 2e-3
        c.vqCodebookLog2 = 5
        c.vqLatents = 2
        c.vqHidden = 16
        c.aaeHidden = [8, 8]
        return c
    }

    /// Smooth random 8×8 images in [-1, 1] and labels.
    static func batch(_ n: Int, rng: inout SeededGenerator) -> (images: [Float], labels: [Int]) {
        var images: [Float] = []
        var labels: [Int] = []
        for _ in 0..<n {
            let a = Double.random(in: 0..<(2 * .pi), using: &rng)
            for i in 0..<8 {
                for j in 0..<8 {
                    images.append(Float(tanh(2 * sin(cos(a) * Double(i) * 0.7 + sin(a) * Double(j) * 0.7 + a))))
                }
            }
            labels.append(Int(a / (2 * .pi) * 10))
        }
        return (images, labels)
    }

    /// The main loss of each model (the one its autoencoder minimises).
    static let mainLoss: [ModelKind: String] = [
        .ae: "loss_ae", .dropout: "loss_ae", .denoising: "loss_ae", .vae: "loss_vae", .aae: "loss_ae",
        .vqvae: "loss_ae", .acai: "loss_ae_l2",
    ]

    func trainLosses(_ kind: ModelKind, on device: any Device, steps: Int, seed: UInt64) throws -> [Float] {
        var rng = SeededGenerator(seed: seed)
        let data = Self.batch(8, rng: &rng)
        let model = try makeModel(kind, config: Self.tinyConfig(kind), seed: seed, on: device)
        let x = try Tensor(shape: [8, 8, 8, 1], values: data.images, on: device)
        let labels = try Tensor(shape: [8], values: data.labels.map(Float.init), on: device).oneHot(depth: 10)
        var random = RandomStream(seed: seed)
        var losses: [Float] = []
        for _ in 0..<steps {
            let l = try model.trainStep(x, labels: labels, random: &random)
            let name = try XCTUnwrap(Self.mainLoss[kind])
            losses.append(try XCTUnwrap(l[name], "\(kind) reports no \(name): \(l.keys.sorted())").item())
            XCTAssertNotNil(l["loss_probe"], "\(kind) must train the latent probe")
        }
        // Encode/decode/probe run and give shapes that fit.
        let z = try model.encode(x, random: &random)
        XCTAssertEqual(z.shape[0], 8)
        XCTAssertEqual(try model.decode(z).shape, [8, 8, 8, 1])
        XCTAssertEqual(try model.probeLogits(x).shape, [8, 10])
        return losses
    }

    func testEveryModelLowersItsLossOnBothDevices() throws {
        let seed = TestRandom.seed(self)
        try TestDevices.forEach { device in
            for kind in ModelKind.allCases {
                let losses = try trainLosses(kind, on: device, steps: 30, seed: seed)
                let first = losses.prefix(3).reduce(0, +) / 3, last = losses.suffix(3).reduce(0, +) / 3
                XCTAssertLessThan(last, first, "\(kind) on \(device.id): \(losses)")
                XCTAssertTrue(losses.allSatisfy(\.isFinite), "\(kind) on \(device.id): \(losses)")
            }
        }
    }

    func testACAIFirstStepsAgreeAcrossDevices() throws {
        let seed = TestRandom.seed(self)
        let cpu = try trainLosses(.acai, on: TestDevices.cpu, steps: 8, seed: seed)
        let cl = try trainLosses(.acai, on: try TestDevices.openCL(), steps: 8, seed: seed)
        assertClose(actual: cl, expected: cpu.map(Double.init), atol: 1e-6, rtol: 1e-4,
                    context: "ACAI losses, OpenCL vs CPU, first 8 steps")
    }
}
