import ACAI
import ACAITestSupport
import XCTest

/// Every differentiable tensor operation, forward and backward, on both devices: the forward output
/// against the float64 reference, the reverse-mode gradient against central finite differences of that
/// reference in float64 (see `GradientCase` for the tolerances). Inputs are fresh random values (logged
/// seed) at awkward sizes, kept away from zero and from the kinks of abs, ReLU and maximum.
final class GradientTests: XCTestCase {
    func run(_ cases: [GradientCase]) throws {
        let seed = TestRandom.seed(self)
        try TestDevices.forEach { device in
            for (i, c) in cases.enumerated() { try checkGradients(c, on: device, seed: seed &+ UInt64(i)) }
        }
    }

    static func positiveSecond(_ i: Int, _ shape: [Int], _ rng: inout SeededGenerator) -> [Double] {
        i == 1 ? GradientCase.positive(i, shape, &rng) : GradientCase.awayFromZero(i, shape, &rng)
    }

    static func binaryForward(_ f: BinaryFunction) -> ([Tensor]) throws -> Tensor {
        switch f {
        case .add: return { x in try x[0] + x[1] }
        case .sub: return { x in try x[0] - x[1] }
        case .mul: return { x in try x[0] * x[1] }
        case .div: return { x in try x[0] / x[1] }
        default: return { x in try x[0].maximum(x[1]) }
        }
    }

    func testBroadcastArithmetic() throws {
        let shapes: [([Int], [Int])] = [([3, 1, 5], [1, 4, 5]), ([7, 33], [33]), ([1], [2, 7]), ([31], [31])]
        let functions: [BinaryFunction] = [.add, .sub, .mul, .div, .maximum]
        var cases: [GradientCase] = []
        for (sa, sb) in shapes {
            for f in functions {
                let reference: ([[Double]]) -> [Double] = { x in
                    Reference.broadcast(f, x[0], shape: sa, x[1], shape: sb, alpha: 0).values
                }
                let inputs: (Int, [Int], inout SeededGenerator) -> [Double]
                if f == .div { inputs = Self.positiveSecond } else { inputs = GradientCase.awayFromZero }
                cases.append(GradientCase("\(f.rawValue) \(sa) \(sb)", shapes: [sa, sb], forwardTolerance: .arithmetic,
                                          makeInput: inputs, forward: Self.binaryForward(f), reference: reference))
            }
        }
        try run(cases)
    }

    func unary(_ name: String, _ f: UnaryFunction, alpha: Double = 0, beta: Double = 0, positive: Bool = false,
               _ forward: @escaping (Tensor) throws -> Tensor) -> GradientCase {
        let reference: ([[Double]]) -> [Double] = { x in Reference.unary(f, x[0], alpha: alpha, beta: beta) }
        let apply: ([Tensor]) throws -> Tensor = { x in try forward(x[0]) }
        let inputs: (Int, [Int], inout SeededGenerator) -> [Double]
        if positive { inputs = GradientCase.positive } else { inputs = GradientCase.awayFromZero }
        return GradientCase(name, shapes: [[7, 5]], forwardTolerance: .transcendental, makeInput: inputs,
                            forward: apply, reference: reference)
    }

    func testUnaryFunctions() throws {
        var cases: [GradientCase] = []
        cases.append(unary("affine", .affine, alpha: 1.5, beta: 0.25) { x in
            let scaled: Tensor = try x * Float(1.5)
            return try scaled + Float(0.25)
        })
        cases.append(unary("negate", .affine, alpha: -1) { x in try -x })
        cases.append(unary("scalar minus", .affine, alpha: -1, beta: 3) { x in try Float(3) - x })
        cases.append(unary("exp", .exp) { x in try x.exp() })
        cases.append(unary("log", .log, positive: true) { x in try x.log() })
        cases.append(unary("sqrt", .sqrt, positive: true) { x in try x.sqrt() })
        cases.append(unary("square", .square) { x in try x.square() })
        cases.append(unary("abs", .abs) { x in try x.abs() })
        cases.append(unary("reciprocal", .reciprocal, alpha: 2, positive: true) { x in try Float(2) / x })
        cases.append(unary("sigmoid", .sigmoid) { x in try x.sigmoid() })
        cases.append(unary("leaky relu", .leakyRelu, alpha: 0.2) { x in try x.leakyRelu() })
        cases.append(unary("relu", .leakyRelu, alpha: 0) { x in try x.relu() })
        try run(cases)
    }

    typealias Forward = ([Tensor]) throws -> Tensor
    typealias Ref = ([[Double]]) -> [Double]

    func testReductionsAndShapes() throws {
        let s = [3, 4, 5]
        var cases: [GradientCase] = []
        var f: Forward, r: Ref

        f = { x in try x[0].sum() }
        r = { x in [x[0].reduce(0, +)] }
        cases.append(GradientCase("sum all", shapes: [s], forwardTolerance: .sum(60), forward: f, reference: r))

        f = { x in try x[0].sum(axes: [0, 2]) }
        r = { x in Reference.sum(x[0], shape: s, axes: [0, 2]) }
        cases.append(GradientCase("sum axes 0,2", shapes: [s], forwardTolerance: .sum(15), forward: f, reference: r))

        f = { x in try x[0].mean(axes: [-1], keepDims: true) }
        r = { x in Reference.sum(x[0], shape: s, axes: [2]).map { $0 / 5 } }
        cases.append(GradientCase("mean axis -1 keepDims", shapes: [s], forwardTolerance: .sum(5), forward: f, reference: r))

        f = { x in try x[0].mean() }
        r = { x in [x[0].reduce(0, +) / 33] }
        cases.append(GradientCase("mean", shapes: [[33]], forwardTolerance: .sum(33), forward: f, reference: r))

        f = { x in try x[0].broadcast(to: [3, 4]) }
        r = { x in (0..<12).map { x[0][$0 / 4] } }
        cases.append(GradientCase("broadcast [3,1] to [3,4]", shapes: [[3, 1]], forwardTolerance: .exact, forward: f, reference: r))

        f = { x in try x[0].reshaped([3, 20]).reshaped(s).slice(1..<3, axis: 1) }
        r = { x in
            Reference.copyAxisRange(x[0], into: [Double](repeating: 0, count: 30), outer: 3, srcAxis: 4, dstAxis: 2,
                                    inner: 5, srcStart: 1, dstStart: 0, length: 2)
        }
        cases.append(GradientCase("reshape + slice axis 1", shapes: [s], forwardTolerance: .exact, forward: f, reference: r))

        f = { x in try Tensor.concat(x, axis: 1) }
        r = { x in
            var out: [Double] = []
            for row in 0..<2 { out += x[0][(3 * row)..<(3 * row + 3)]; out += x[1][(5 * row)..<(5 * row + 5)] }
            return out
        }
        cases.append(GradientCase("concat axis 1", shapes: [[2, 3], [2, 5]], forwardTolerance: .exact, forward: f, reference: r))

        f = { x in try x[0].reversed(axis: 0) }
        r = { x in Reference.reverseAxis(x[0], outer: 1, axis: 3, inner: 7) }
        cases.append(GradientCase("reversed axis 0", shapes: [[3, 7]], forwardTolerance: .exact, forward: f, reference: r))

        f = { x in try x[0].avgPool2x2() }
        r = { x in Reference.avgPool2x2(x[0], shape: ImageShape(batch: 3, height: 4, width: 6, channels: 2)) }
        cases.append(GradientCase("avgPool2x2", shapes: [[3, 4, 6, 2]], forwardTolerance: .arithmetic, forward: f, reference: r))

        f = { x in try x[0].upsample2x() }
        r = { x in Reference.upsample2x(x[0], shape: ImageShape(batch: 1, height: 3, width: 2, channels: 3)) }
        cases.append(GradientCase("upsample2x", shapes: [[1, 3, 2, 3]], forwardTolerance: .exact, forward: f, reference: r))

        let indices: (Int, [Int], inout SeededGenerator) -> [Double] = { i, shape, rng in
            i == 1 ? [4, 0, 4, 2] : GradientCase.awayFromZero(i, shape, &rng)
        }
        f = { x in try x[0].gatherRows(x[1].detached()) }
        r = { x in Reference.gatherRows(x[0], index: x[1], rows: 4, tableRows: 5, columns: 3) }
        cases.append(GradientCase("gatherRows", shapes: [[5, 3], [4]], forwardTolerance: .exact, differentiable: [true, false],
                                  makeInput: indices, forward: f, reference: r))
        try run(cases)
    }

    func testMatmulAllTransposes() throws {
        let m = 7, k = 33, n = 5
        var cases: [GradientCase] = []
        for ta in [false, true] {
            for tb in [false, true] {
                let f: Forward = { x in try x[0].matmul(x[1], transposeA: ta, transposeB: tb) }
                let r: Ref = { x in
                    Reference.gemm(x[0], x[1], [Double](repeating: 0, count: m * n),
                                   shape: GemmShape(m: m, n: n, k: k, transA: ta, transB: tb))
                }
                let shapes: [[Int]] = [ta ? [k, m] : [m, k], tb ? [n, k] : [k, n]]
                cases.append(GradientCase("matmul transA \(ta) transB \(tb)", shapes: shapes, forwardTolerance: .sum(k),
                                          terms: max(k, m, n), forward: f, reference: r))
            }
        }
        try run(cases)
    }

    func conv(_ n: Int, _ h: Int, _ w: Int, _ cin: Int, _ cout: Int, _ k: Int, bias: Bool,
              activation: Activation = .identity) -> GradientCase {
        let s = ConvShape(batch: n, height: h, width: w, inChannels: cin, outChannels: cout, kernel: k)
        let f: Forward = { x in try x[0].conv2d(x[1], bias: bias ? x[2] : nil, activation: activation) }
        let r: Ref = { x in Reference.activate(Reference.conv2d(x[0], x[1], bias: bias ? x[2] : nil, shape: s), activation) }
        let shapes: [[Int]] = [[n, h, w, cin], [k, k, cin, cout]] + (bias ? [[cout]] : [])
        let act = activation.isIdentity ? "" : " leaky \(activation.alpha)"
        return GradientCase("conv \(k)x\(k) [\(n),\(h),\(w),\(cin)] to \(cout)\(bias ? " +bias" : "")\(act)", shapes: shapes,
                            forwardTolerance: .sum(k * k * cin), terms: max(k * k * cin, n * h * w), forward: f, reference: r)
    }

    func testConvolution() throws {
        try run([conv(3, 5, 4, 3, 2, 3, bias: true), conv(1, 1, 1, 2, 3, 3, bias: false), conv(1, 4, 4, 2, 3, 1, bias: true)])
    }

    /// The fused leaky ReLU: the rule's one input-gradient op and one filter-gradient op (with db) mask the
    /// gradient by the saved output's sign. Pre-activations are sums of ±[0.1, 2] products, so a central
    /// difference (step 1e-5) straddles the kink only with negligible probability.
    func testConvolutionWithFusedLeakyRelu() throws {
        let leaky = Activation.leakyRelu(alpha: 0.2)
        try run([conv(3, 5, 4, 3, 5, 3, bias: true, activation: leaky),
                 conv(2, 3, 7, 5, 3, 3, bias: false, activation: leaky),
                 conv(1, 4, 5, 17, 2, 1, bias: true, activation: leaky)])
    }

    static func logitsAndDistributions(_ i: Int, _ shape: [Int], _ rng: inout SeededGenerator) -> [Double] {
        if i == 0 { return GradientCase.awayFromZero(i, shape, &rng) }
        // Rows of a probability distribution.
        let cols = shape[shape.count - 1]
        let raw = (0..<shape.reduce(1, *)).map { _ in Double.random(in: 0.05...1, using: &rng) }
        var out: [Double] = []
        for row in 0..<(raw.count / cols) {
            let slice = raw[(row * cols)..<((row + 1) * cols)]
            let total = slice.reduce(0, +)
            out += slice.map { $0 / total }
        }
        return out
    }

    func testLosses() throws {
        let rows = 3, classes = 7
        var cases: [GradientCase] = []
        var f: Forward = { x in try x[0].softmaxCrossEntropy(labels: x[1].detached()) }
        var r: Ref = { x in Reference.softmaxCrossEntropy(x[0], labels: x[1], rows: rows, classes: classes) }
        cases.append(GradientCase("softmax cross-entropy", shapes: [[rows, classes], [rows, classes]], forwardTolerance: .compound,
                                  differentiable: [true, false], makeInput: Self.logitsAndDistributions, forward: f, reference: r))
        f = { x in try x[0].sigmoidCrossEntropy(labels: x[1]) }
        r = { x in zip(x[0], x[1]).map { Reference.binary(.sigmoidCrossEntropy, $0, $1, alpha: 0) } }
        cases.append(GradientCase("sigmoid cross-entropy", shapes: [[rows, classes], [rows, classes]], forwardTolerance: .compound,
                                  makeInput: Self.logitsAndDistributions, forward: f, reference: r))
        try run(cases)
    }

    /// A dense layer with leaky ReLU and a mean-square loss, end to end through several rules.
    func testComposedLayer() throws {
        let f: Forward = { x in
            let pre: Tensor = try x[0].matmul(x[1]) + x[2]
            return try pre.leakyRelu().square().mean()
        }
        let r: Ref = { x in
            let y = Reference.gemm(x[0], x[1], [Double](repeating: 0, count: 15), shape: GemmShape(m: 3, n: 5, k: 7))
            var total = 0.0
            for (i, v) in y.enumerated() {
                let a = v + x[2][i % 5]
                let z = a > 0 ? a : 0.2 * a
                total += z * z
            }
            return [total / 15]
        }
        try run([GradientCase("leaky(x·W + b)² mean", shapes: [[3, 7], [7, 5], [5]], forwardTolerance: .sum(7), terms: 7,
                              forward: f, reference: r)])
    }
}
