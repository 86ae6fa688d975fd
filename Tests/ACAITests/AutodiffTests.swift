import ACAI
import ACAITestSupport
import XCTest

/// Semantics of the tape that ACAI relies on: stop-gradient, several losses over disjoint parameter sets
/// from one forward pass, gradient accumulation over shared subgraphs. Each runs on both devices.
final class AutodiffTests: XCTestCase {
    func devices() throws -> [any Device] { [TestDevices.cpu, try TestDevices.openCL()] }

    func testStopGradientBlocksFlow() throws {
        let seed = TestRandom.seed(self)
        for device in try devices() {
            let w = Parameter(name: "w", try Tensor.random([5, 3], .normal, seed: seed, on: device))
            let x = try Tensor.random([5, 3], .normal, seed: seed &+ 1, on: device)
            // loss = Σ w·x + Σ stop(w)·x²: only the first term reaches w.
            let loss = try (w.value * x).sum() + (w.value.detached() * x.square()).sum()
            let g = try gradients(of: loss, wrt: [w])[0]
            assertClose(actual: try g.toArray(), expected: try x.toArray().map(Double.init), tolerance: .exact,
                        context: "stop-gradient on \(device.id)")
            // A loss that only sees the detached parameter has a zero gradient.
            let blocked = try gradients(of: try (w.value.detached() * x).sum(), wrt: [w])[0]
            XCTAssertEqual(try blocked.toArray(), [Float](repeating: 0, count: 15), "detached gradient on \(device.id)")
        }
    }

    /// ACAI's pattern: one forward pass, an autoencoder loss and a critic loss, each differentiated with
    /// respect to its own parameters, must equal what two separate forward passes give.
    func testTwoLossesFromOneForwardPass() throws {
        let seed = TestRandom.seed(self)
        for device in try devices() {
            let enc = Parameter(name: "enc", try Tensor.random([6, 4], .normal, seed: seed, on: device))
            let critic = Parameter(name: "critic", try Tensor.random([4, 1], .normal, seed: seed &+ 1, on: device))
            let x = try Tensor.random([3, 6], .normal, seed: seed &+ 2, on: device)

            func losses() throws -> (ae: Tensor, critic: Tensor) {
                let z = try x.matmul(enc.value).leakyRelu()
                let score = try z.matmul(critic.value)           // the critic looks at the code
                let aeLoss = try z.square().mean() + (score.square().mean() * 0.5)
                let criticLoss = try (z.detached().matmul(critic.value) - 0.25).square().mean()
                return (aeLoss, criticLoss)
            }
            let shared = try losses()
            let gAE = try gradients(of: shared.ae, wrt: [enc])[0]
            let gCritic = try gradients(of: shared.critic, wrt: [critic])[0]
            // The critic loss does not depend on the encoder (stop-gradient), so its gradient there is zero.
            let gCriticEnc = try gradients(of: shared.critic, wrt: [enc])[0]
            XCTAssertEqual(try gCriticEnc.toArray(), [Float](repeating: 0, count: 24))

            let gAE2 = try gradients(of: try losses().ae, wrt: [enc])[0]
            let gCritic2 = try gradients(of: try losses().critic, wrt: [critic])[0]
            assertClose(actual: try gAE.toArray(), expected: try gAE2.toArray().map(Double.init), tolerance: .exact,
                        context: "autoencoder gradient, shared vs separate forward, \(device.id)")
            assertClose(actual: try gCritic.toArray(), expected: try gCritic2.toArray().map(Double.init),
                        tolerance: .exact, context: "critic gradient, shared vs separate forward, \(device.id)")
            XCTAssertGreaterThan(try gAE.abs().sum().item(), 0)
            XCTAssertGreaterThan(try gCritic.abs().sum().item(), 0)
        }
    }

    /// A parameter used twice accumulates both contributions: d/dw Σ (w·w + 3w) = 2w + 3.
    func testSharedUseAccumulates() throws {
        let seed = TestRandom.seed(self)
        for device in try devices() {
            let w = Parameter(name: "w", try Tensor.random([7], .normal, seed: seed, on: device))
            let g = try gradients(of: try (w.value * w.value + w.value * 3).sum(), wrt: [w])[0]
            let expected = try w.toArray().map { 2 * Double($0) + 3 }
            assertClose(actual: try g.toArray(), expected: expected, tolerance: .arithmetic,
                        context: "accumulated gradient on \(device.id)")
        }
    }

    func testNonScalarLossIsRejected() throws {
        let w = Parameter(name: "w", try Tensor.random([2, 2], .normal, seed: 3, on: TestDevices.cpu))
        XCTAssertThrowsError(try gradients(of: try w.value * 2, wrt: [w])) { error in
            XCTAssertTrue("\(error)".contains("scalar"), "\(error)")
        }
    }
}
