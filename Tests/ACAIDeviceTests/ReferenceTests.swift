import ACAIDevice
import ACAITestSupport
import XCTest

/// Checks of the float64 reference itself (no device): the backward passes are the adjoints of their forward
/// passes (⟨f(x), y⟩ = ⟨x, f*(y)⟩), a 1×1 convolution is a matrix product, and the cross-entropy gradient
/// matches central differences. Everything is float64, so the tolerances are 1e-9 relative.
final class ReferenceTests: XCTestCase {
    static func dot(_ a: [Double], _ b: [Double]) -> Double {
        precondition(a.count == b.count)
        return zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
    }

    static func random(_ n: Int, _ rng: inout SeededGenerator) -> [Double] {
        TestRandom.uniform(n, using: &rng).map(Double.init)
    }

    func testConvolutionBackwardPassesAreAdjoints() {
        var rng = TestRandom.generator(self)
        for kernel in [1, 3] {
            let s = ConvShape(batch: 2, height: 5, width: 4, inChannels: 3, outChannels: 4, kernel: kernel)
            let x = Self.random(2 * 5 * 4 * 3, &rng), w = Self.random(kernel * kernel * 12, &rng)
            let dy = Self.random(2 * 5 * 4 * 4, &rng)
            let y = Reference.conv2d(x, w, bias: nil, shape: s)
            let lhs = Self.dot(y, dy)
            let viaInput = Self.dot(x, Reference.conv2dBackwardInput(dy, w, shape: s))
            let viaFilter = Self.dot(w, Reference.conv2dBackwardFilter(x, dy, shape: s))
            XCTAssertEqual(viaInput, lhs, accuracy: 1e-9 * max(1, abs(lhs)), "k=\(kernel): ⟨conv(x), dy⟩ vs ⟨x, dx⟩")
            XCTAssertEqual(viaFilter, lhs, accuracy: 1e-9 * max(1, abs(lhs)), "k=\(kernel): ⟨conv(x), dy⟩ vs ⟨w, dw⟩")
            // The bias adds bias[co] to every pixel.
            let bias = Self.random(4, &rng)
            let withBias = Reference.conv2d(x, w, bias: bias, shape: s)
            for (i, (a, b)) in zip(withBias, y).enumerated() {
                XCTAssertEqual(a - b, bias[i % 4], accuracy: 1e-12)
            }
        }
    }

    func testOneByOneConvolutionIsAMatrixProduct() {
        var rng = TestRandom.generator(self)
        let s = ConvShape(batch: 3, height: 2, width: 5, inChannels: 7, outChannels: 4, kernel: 1)
        let pixels = 3 * 2 * 5
        let x = Self.random(pixels * 7, &rng), w = Self.random(7 * 4, &rng)
        let viaGemm = Reference.gemm(x, w, [], shape: GemmShape(m: pixels, n: 4, k: 7))
        let conv = Reference.conv2d(x, w, bias: nil, shape: s)
        for (a, b) in zip(conv, viaGemm) { XCTAssertEqual(a, b, accuracy: 1e-12) }
        // Transposes: (Aᵀ)ᵀ·B with A stored transposed equals A·B.
        var xT = [Double](repeating: 0, count: x.count)
        for i in 0..<pixels { for p in 0..<7 { xT[p * pixels + i] = x[i * 7 + p] } }
        let viaTransA = Reference.gemm(xT, w, [], shape: GemmShape(m: pixels, n: 4, k: 7, transA: true))
        for (a, b) in zip(viaTransA, viaGemm) { XCTAssertEqual(a, b, accuracy: 1e-12) }
    }

    func testPoolingBackwardPassesAreAdjoints() {
        var rng = TestRandom.generator(self)
        let s = ImageShape(batch: 2, height: 4, width: 6, channels: 3)
        let x = Self.random(s.count, &rng), dy = Self.random(s.count / 4, &rng)
        XCTAssertEqual(Self.dot(Reference.avgPool2x2(x, shape: s), dy),
                       Self.dot(x, Reference.avgPool2x2Backward(dy, shape: s)), accuracy: 1e-9)
        let small = ImageShape(batch: 2, height: 3, width: 5, channels: 2)
        let u = Self.random(small.count, &rng), du = Self.random(4 * small.count, &rng)
        XCTAssertEqual(Self.dot(Reference.upsample2x(u, shape: small), du),
                       Self.dot(u, Reference.upsample2xBackward(du, shape: small)), accuracy: 1e-9)
    }

    func testSoftmaxCrossEntropyGradientMatchesFiniteDifferences() {
        var rng = TestRandom.generator(self)
        let rows = 3, classes = 5
        let logits = Self.random(rows * classes, &rng)
        var labels = TestRandom.positive(rows * classes, using: &rng).map(Double.init)
        for r in 0..<rows {
            let total = labels[(r * classes)..<((r + 1) * classes)].reduce(0, +)
            for c in 0..<classes { labels[r * classes + c] /= total }
        }
        let dloss = Self.random(rows, &rng)
        func objective(_ z: [Double]) -> Double {
            Self.dot(Reference.softmaxCrossEntropy(z, labels: labels, rows: rows, classes: classes), dloss)
        }
        let grad = Reference.softmaxCrossEntropyBackward(logits, labels: labels, dloss: dloss, rows: rows,
                                                         classes: classes)
        for j in 0..<logits.count {
            var plus = logits, minus = logits
            plus[j] += 1e-6
            minus[j] -= 1e-6
            XCTAssertEqual((objective(plus) - objective(minus)) / 2e-6, grad[j], accuracy: 1e-7, "logit \(j)")
        }
        // The sigmoid cross-entropy formula equals −b·log σ(a) − (1 − b)·log(1 − σ(a)).
        for _ in 0..<20 {
            let a = Double.random(in: -5...5, using: &rng), b = Double.random(in: 0...1, using: &rng)
            let sigma = 1 / (1 + exp(-a))
            XCTAssertEqual(Reference.binary(.sigmoidCrossEntropy, a, b, alpha: 0),
                           -b * log(sigma) - (1 - b) * log(1 - sigma), accuracy: 1e-12)
        }
    }
}
