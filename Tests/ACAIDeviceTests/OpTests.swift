import ACAICPU
import ACAIDevice
import ACAIOpenCL
import ACAITestSupport
import Foundation
import XCTest

/// Every case of the `Op` table, and every `UnaryFunction` and `BinaryFunction`, on the CPU device and on the
/// OpenCL device, against the float64 reference in `ACAITestSupport/Reference.swift`.
///
/// Each test draws a fresh seed (printed as `seed = N (test)`; replay with `ACAI_TEST_SEED=N`), builds random
/// inputs (uniform in [−2, 2]; positive or away from zero where the op needs it; never all zeros), uploads them,
/// poisons every output with NaN through a host write, runs the op, reads back and compares. A NaN left in an
/// output always fails. Sizes are awkward on purpose (1, 7, 31, 33, 65; batch 1 and 3) so that vector widths and
/// work-group edges are crossed, plus 40 001 (past the CPU's parallel threshold) and one realistic shape per family.
///
/// Tolerances, |actual − expected| ≤ atol + rtol·|expected| (see `Tolerance`):
/// - data movement (copies, gather, one-hot, upsample, arg-max/min, uniform random bits): exact;
/// - elementwise arithmetic (affine, reciprocal, sqrt, square, abs, sign, leaky ReLU, add … greater, pooling,
///   dropout masks, Adam): atol 1e-6, rtol 1e-5;
/// - transcendental (exp, log, sigmoid): atol 1e-6, rtol 5e-5;
/// - compound (sigmoid and softmax cross-entropies and their gradients): atol 1e-5, rtol 1e-4;
/// - random: see `RandomTests`;
/// - products and reductions over K terms (gemm: K = k; conv: K = k²·cin forward, k²·cout for dx, batch·h·w for
///   dw; reduceSum: K = reduced count): atol = 1e-6·√K·rms(expected), rtol 1e-4. A float32 sum's rounding
///   error grows like √K times the size of the sum, so this keeps the same margin at every K.
final class OpTests: XCTestCase {
    /// Awkward sizes around vector widths and work-group edges, and one past the CPU's parallel threshold.
    static let sizes = [1, 7, 31, 33, 65, 40_001]

    // MARK: Elementwise

    func testFill() throws {
        var rng = TestRandom.generator(self)
        var cases: [OpCase] = []
        for (i, n) in Self.sizes.enumerated() {
            // One case fills with 0, which the NaN poison makes as telling as any other value.
            let value: Float = i == 2 ? 0 : TestRandom.uniform(1, excluding: 0.1, using: &rng)[0]
            cases.append(OpCase("fill n=\(n) value=\(value)", inputs: [], outputs: [.poison(n)],
                                tolerance: .exact) { _, o in .fill(out: o[0], value: value) })
        }
        try checkOnAllDevices(cases)
    }

    func testUnary() throws {
        var rng = TestRandom.generator(self)
        var cases: [OpCase] = []
        for f in UnaryFunction.allCases {
            for n in Self.sizes {
                var x: [Float]
                switch f {
                case .log, .sqrt: x = TestRandom.positive(n, using: &rng)
                case .reciprocal: x = TestRandom.uniform(n, excluding: 0.25, using: &rng)
                default: x = TestRandom.uniform(n, using: &rng)
                }
                // The functions with a kink or a jump at 0 see an exact 0 too.
                if [.sign, .abs, .leakyRelu, .affine].contains(f), n >= 7 { x[3] = 0 }
                var parameters: [(alpha: Float, beta: Float)] = [(1, 0)]
                switch f {
                case .affine:
                    parameters = [(TestRandom.uniform(1, excluding: 0.5, using: &rng)[0],
                                   TestRandom.uniform(1, using: &rng)[0]), (-1, 0)]
                case .reciprocal: parameters = [(TestRandom.uniform(1, excluding: 0.5, using: &rng)[0], 0)]
                case .leakyRelu: parameters = [(0.2, 0), (0, 0)]
                default: break
                }
                let tolerance: Tolerance = [.exp, .log, .sigmoid].contains(f) ? .transcendental : .arithmetic
                for (alpha, beta) in parameters {
                    cases.append(OpCase("unary \(f) n=\(n) alpha=\(alpha) beta=\(beta)", inputs: [x],
                                        outputs: [.poison(n)], tolerance: tolerance) { i, o in
                        .unary(f, x: i[0], out: o[0], alpha: alpha, beta: beta)
                    })
                }
            }
        }
        try checkOnAllDevices(cases)
    }

    /// Shapes for the binary ops: dense ones of every awkward size, then broadcasts.
    static let binaryShapes: [([Int], [Int])] = sizes.map { ([$0], [$0]) } + [
        ([3, 1, 5], [1, 4, 5]),
        ([7, 33], [33]),
        ([33], [7, 33]),
        ([7, 5], [1]),
        ([1], [7, 5]),
        ([1], [1]),
        ([3, 1], [1, 4]),
        ([3, 7, 5], [3, 1, 1]),
        ([2, 3, 4, 5], [3, 1, 5]),
        ([2, 1, 3, 1, 2, 1], [1, 2, 1, 3, 1, 2]),
        ([8, 32, 32, 16], [16]),  // a bias added to a realistic activation
    ]

    func testBinary() throws {
        var rng = TestRandom.generator(self)
        var cases: [OpCase] = []
        for f in BinaryFunction.allCases {
            for (aShape, bShape) in Self.binaryShapes {
                guard let layout = BroadcastLayout.make(aShape, bShape) else {
                    XCTFail("BroadcastLayout.make(\(aShape), \(bShape)) returned nil")
                    continue
                }
                let na = aShape.reduce(1, *), nb = bShape.reduce(1, *)
                var a = TestRandom.uniform(na, using: &rng)
                var b: [Float]
                switch f {
                case .div: b = TestRandom.uniform(nb, excluding: 0.25, using: &rng)
                case .sigmoidCrossEntropy: b = TestRandom.uniform(nb, in: 0...1, using: &rng)
                default: b = TestRandom.uniform(nb, using: &rng)
                }
                let dense = aShape == bShape
                if dense, na >= 7 {
                    switch f {
                    case .leakyReluBackward: a[3] = 0  // the gradient at 0 takes the alpha branch
                    case .maximum, .greater: b[2] = a[2]  // a tie
                    case .sigmoidCrossEntropy: a[0] = 100; a[1] = -100  // must not overflow
                    default: break
                    }
                }
                let alpha: Float = f == .leakyReluBackward ? 0.2 : 1
                // The layout must mean NumPy broadcasting of the original shapes.
                let viaLayout = Reference.binary(f, a.map(Double.init), b.map(Double.init), layout: layout,
                                                 alpha: Double(alpha))
                let numpy = Reference.broadcast(f, a.map(Double.init), shape: aShape, b.map(Double.init),
                                                shape: bShape, alpha: Double(alpha))
                XCTAssertEqual(viaLayout, numpy.values, "BroadcastLayout.make(\(aShape), \(bShape)) = \(layout)")
                let tolerance: Tolerance = f == .sigmoidCrossEntropy ? .compound : .arithmetic
                cases.append(OpCase("binary \(f) \(aShape) ⊕ \(bShape) layout \(layout.shape)", inputs: [a, b],
                                    outputs: [.poison(layout.count)], tolerance: tolerance) { i, o in
                    .binary(f, a: i[0], b: i[1], out: o[0], layout: layout, alpha: alpha)
                })
            }
        }
        try checkOnAllDevices(cases)
    }

    // MARK: Reductions

    func testReduceSum() throws {
        var rng = TestRandom.generator(self)
        let shapes: [([Int], Set<Int>)] = [
            ([1], [0]), ([65], [0]), ([1000], [0]), ([5000], [0]), ([3, 4000], [1]), ([40_000, 3], [0]),
            ([7, 33], [0]), ([7, 33], [1]), ([7, 33], [0, 1]), ([33, 31], [0]), ([1, 7], [0]),
            ([3, 5, 7], [0]), ([3, 5, 7], [1]), ([3, 5, 7], [2]), ([3, 5, 7], [0, 2]), ([3, 5, 7], [0, 1, 2]),
            ([3, 1, 5], [1]), ([2, 3, 4, 5], [0, 2]), ([2, 3, 4, 5], [1, 3]),
            ([64, 8, 8, 16], [0, 1, 2]),  // a bias gradient of a realistic batch
        ]
        var cases: [OpCase] = []
        for (shape, axes) in shapes {
            let layout = ReduceLayout(shape: shape, reduced: shape.indices.map { axes.contains($0) })
            let x = TestRandom.uniform(shape.reduce(1, *), using: &rng)
            let naive = Reference.sum(x.map(Double.init), shape: shape, axes: axes)
            let viaLayout = Reference.reduceSum(x.map(Double.init), layout: layout)
            XCTAssertEqual(layout.inputCount, x.count, "ReduceLayout(\(shape), \(axes)).inputCount")
            assertClose(actual: viaLayout.map { Float($0) }, expected: naive, atol: 1e-6, rtol: 1e-6,
                        context: "ReduceLayout(\(shape), \(axes)) = \(layout) against a naive sum")
            cases.append(OpCase("reduceSum \(shape) over \(axes.sorted()) layout \(layout.shape) \(layout.reduced)",
                                inputs: [x], outputs: [.poison(layout.outputCount)],
                                tolerance: .sum(layout.reducedCount)) { i, o in
                .reduceSum(x: i[0], out: o[0], layout: layout)
            })
        }
        try checkOnAllDevices(cases)
    }

    func testArgReduce() throws {
        var rng = TestRandom.generator(self)
        var cases: [OpCase] = []
        for (outer, axis, inner) in [(1, 1, 1), (1, 7, 1), (3, 33, 1), (1, 65, 5), (3, 7, 5), (7, 31, 3)] {
            for ties in [false, true] {
                let n = outer * axis * inner
                // Small integers make ties common: the first index must win.
                let x = ties ? TestRandom.integers(n, using: &rng) : TestRandom.uniform(n, using: &rng)
                for findMax in [true, false] {
                    cases.append(OpCase("arg\(findMax ? "max" : "min") [\(outer), \(axis), \(inner)]"
                                        + (ties ? " with ties" : ""), inputs: [x],
                                        outputs: [.poison(outer * inner)], tolerance: .exact) { i, o in
                        .argReduce(x: i[0], out: o[0], outer: outer, axis: axis, inner: inner, findMax: findMax)
                    })
                }
            }
        }
        try checkOnAllDevices(cases)
    }

    // MARK: Products

    func testGemm() throws {
        var rng = TestRandom.generator(self)
        let dims = [1, 7, 33, 65]
        var cases: [OpCase] = []
        var index = 0
        // Products of up to 2^17 multiply-adds take the one-launch path on OpenCL, larger ones the blocked
        // kernels with their leftover columns: the extra shapes keep every path covered.
        let shapes = dims.flatMap { m in dims.flatMap { n in dims.map { k in (m, n, k) } } }
            + [(129, 7, 257), (129, 1, 1031), (257, 33, 17), (17, 130, 67)]
        for (m, n, k) in shapes {
            for (transA, transB) in [(false, false), (true, false), (false, true), (true, true)] {
                for beta: Float in [0, 1] {
                    index += 1
                    let alpha: Float = index % 3 == 0 ? -0.75 : 1
                    let shape = GemmShape(m: m, n: n, k: k, transA: transA, transB: transB, alpha: alpha,
                                          beta: beta)
                    let a = TestRandom.uniform(m * k, using: &rng)
                    let b = TestRandom.uniform(k * n, using: &rng)
                    // beta = 0 must ignore C: it stays NaN-poisoned.
                    let c: OpCase.Initial = beta == 0 ? .poison(m * n)
                        : .values(TestRandom.uniform(m * n, using: &rng))
                    cases.append(OpCase("gemm m=\(m) n=\(n) k=\(k) transA=\(transA) transB=\(transB) "
                                        + "alpha=\(alpha) beta=\(beta)", inputs: [a, b], outputs: [c],
                                        tolerance: .sum(k)) { i, o in
                        .gemm(a: i[0], b: i[1], c: o[0], shape: shape)
                    })
                }
            }
        }
        try checkOnAllDevices(cases)
    }

    /// Convolution shapes: every h, w in {1, 2, 5, 8}, channels in {1, 3, 16, 17}, kernel 1 and 3, batch 1 and
    /// 3, with and without bias; and one realistic shape (a 32×32 layer of the ACAI encoder).
    static func convShapes() -> [(shape: ConvShape, bias: Bool)] {
        var shapes: [(ConvShape, Bool)] = []
        let spatial = [(1, 1), (2, 2), (5, 5), (8, 8), (1, 5), (8, 2)]
        // Besides 1, 3, 16, 17: 8 and 12 reach the kernels' other channel vector widths, 33 a blocked part plus a tail.
        let channels = [(1, 1), (3, 16), (16, 3), (17, 17), (8, 5), (12, 33)]
        var combination = 0
        for (h, w) in spatial {
            for (cin, cout) in channels {
                combination += 1
                for kernel in [1, 3] {
                    // Batch 1/3 and bias on/off alternate so that each kernel size meets all four pairings.
                    let flip = kernel == 3 ? 1 : 0
                    shapes.append((ConvShape(batch: (combination + flip) % 2 == 0 ? 1 : 3, height: h, width: w,
                                             inChannels: cin, outChannels: cout, kernel: kernel),
                                   (combination / 2 + flip) % 2 == 0))
                }
            }
        }
        shapes.append((ConvShape(batch: 2, height: 32, width: 32, inChannels: 16, outChannels: 16, kernel: 3), true))
        // More than one 64-channel tile of the tiled (GPU) kernel in both directions, and a ragged K.
        shapes.append((ConvShape(batch: 1, height: 7, width: 9, inChannels: 70, outChannels: 67, kernel: 3), true))
        // 128 output channels and enough pixels that the CPU tuning's input gradient takes the blocked kernel
        // with its 147 KiB private filter copy (fewer pixels take the dot products).
        shapes.append((ConvShape(batch: 2, height: 16, width: 16, inChannels: 64, outChannels: 128, kernel: 3), false))
        // Two vectors of output channels, input channels a multiple of the rows (the unclamped filter gradient).
        shapes.append((ConvShape(batch: 2, height: 8, width: 8, inChannels: 16, outChannels: 32, kernel: 3), true))
        // One output channel from enough input channels for whole vectors and a tail (the CPU's four-pixel
        // narrow product and its filter gradient), over a pixel count that is not a multiple of 4.
        shapes.append((ConvShape(batch: 3, height: 5, width: 7, inChannels: 17, outChannels: 1, kernel: 3), true))
        return shapes
    }

    /// A second CPU device using its im2col + BLAS convolution (`ACAI_CPU_CONV=blas`, read when the device is
    /// made), so that both CPU convolution algorithms are checked.
    static let cpuWithBLASConvolution: (label: String, device: any Device) = {
        let previous = ProcessInfo.processInfo.environment["ACAI_CPU_CONV"]
        setenv("ACAI_CPU_CONV", "blas", 1)
        defer { if let previous { setenv("ACAI_CPU_CONV", previous, 1) } else { unsetenv("ACAI_CPU_CONV") } }
        return ("cpu (ACAI_CPU_CONV=blas)", CPUDevice())
    }()

    /// The OpenCL device with the GPU launch parameters (local-memory tiled convolutions, 4-wide blocks), so
    /// that the GPU code paths run in CI on PoCL too. Empty when OpenCL is unavailable and not required (the
    /// OpenCL part of `checkOnAllDevices` then skips); an error when it is required.
    static func openCLWithGPUTuning() throws -> [(label: String, device: any Device)] {
        let device: OpenCLDevice
        do { device = try TestDevices.freshOpenCL() } catch {
            if TestDevices.openCLRequired { throw error }
            return []
        }
        device.tuning = .gpu(computeUnits: device.info.computeUnits)
        return [("\(device.id) with GPU tuning", device)]
    }

    static func describe(_ s: ConvShape) -> String {
        "[n=\(s.batch) h=\(s.height) w=\(s.width) cin=\(s.inChannels) cout=\(s.outChannels) k=\(s.kernel)]"
    }

    /// The fused variants a shape is checked with: variant v in 0..<8 is (leaky ReLU: bit 0, bias or db: bit 1,
    /// accumulate: bit 2). Shape i gets v = (3·(i / 2) + i % 2) mod 8 and its complement 7 − v; the grid lists
    /// each channel/spatial combination as a 1×1 shape then a 3×3 one, so every variant meets both kernel sizes.
    static func convVariants(_ i: Int) -> [(leaky: Bool, bias: Bool, accumulate: Bool)] {
        let v = (3 * (i / 2) + i % 2) % 8
        return [v, 7 - v].map { ($0 & 1 != 0, $0 & 2 != 0, $0 & 4 != 0) }
    }

    /// The slope of the fused leaky ReLU in the tests (the reference model's; any slope but 1 shows the mask).
    static let alpha: Float = 0.2

    static func label(_ leaky: Bool) -> String { leaky ? " leaky" : "" }

    func testConv2d() throws {
        var rng = TestRandom.generator(self)
        var cases: [OpCase] = []
        for (s, defaultBias) in Self.convShapes() {
            let x = TestRandom.uniform(s.batch * s.height * s.width * s.inChannels, using: &rng)
            let w = TestRandom.uniform(s.kernel * s.kernel * s.inChannels * s.outChannels, using: &rng)
            let b = TestRandom.uniform(s.outChannels, using: &rng)
            let yCount = s.batch * s.height * s.width * s.outChannels
            // The grid's own bias flag with the identity, the other one with the leaky ReLU.
            for (leaky, bias) in [(false, defaultBias), (true, !defaultBias)] {
                let activation: Activation = leaky ? .leakyRelu(alpha: Self.alpha) : .identity
                cases.append(OpCase("conv2d \(Self.describe(s))\(bias ? " +bias" : "")\(Self.label(leaky))",
                                    inputs: bias ? [x, w, b] : [x, w], outputs: [.poison(yCount)],
                                    tolerance: .sum(s.kernel * s.kernel * s.inChannels)) { i, o in
                    .conv2d(x: i[0], w: i[1], bias: bias ? i[2] : nil, y: o[0], shape: s, activation: activation)
                })
            }
        }
        try checkOnAllDevices(cases, alsoOn: [Self.cpuWithBLASConvolution] + Self.openCLWithGPUTuning())
    }

    func testConv2dBackwardInput() throws {
        var rng = TestRandom.generator(self)
        var cases: [OpCase] = []
        for (s, _) in Self.convShapes() {
            let yCount = s.batch * s.height * s.width * s.outChannels
            let dy = TestRandom.uniform(yCount, using: &rng)
            let w = TestRandom.uniform(s.kernel * s.kernel * s.inChannels * s.outChannels, using: &rng)
            // The saved forward output: its sign decides the mask (about half the elements each way).
            let y = TestRandom.uniform(yCount, using: &rng)
            for leaky in [false, true] {
                let activation: Activation = leaky ? .leakyRelu(alpha: Self.alpha) : .identity
                cases.append(OpCase("conv2dBackwardInput \(Self.describe(s))\(Self.label(leaky))",
                                    inputs: leaky ? [dy, w, y] : [dy, w],
                                    outputs: [.poison(s.batch * s.height * s.width * s.inChannels)],
                                    tolerance: .sum(s.kernel * s.kernel * s.outChannels)) { i, o in
                    .conv2dBackwardInput(dy: i[0], w: i[1], dx: o[0], shape: s, activation: activation,
                                         output: leaky ? i[2] : nil)
                })
            }
        }
        try checkOnAllDevices(cases, alsoOn: [Self.cpuWithBLASConvolution] + Self.openCLWithGPUTuning())
    }

    func testConv2dBackwardFilter() throws {
        var rng = TestRandom.generator(self)
        var cases: [OpCase] = []
        for (i, (s, _)) in Self.convShapes().enumerated() {
            let yCount = s.batch * s.height * s.width * s.outChannels
            let wCount = s.kernel * s.kernel * s.inChannels * s.outChannels
            let x = TestRandom.uniform(s.batch * s.height * s.width * s.inChannels, using: &rng)
            let dy = TestRandom.uniform(yCount, using: &rng)
            let y = TestRandom.uniform(yCount, using: &rng)
            // Accumulating ops start from random finite gradients (the reference adds to them); the others from NaN.
            let oldW = TestRandom.uniform(wCount, using: &rng)
            let oldB = TestRandom.uniform(s.outChannels, using: &rng)
            for (leaky, db, accumulate) in Self.convVariants(i) {
                let activation: Activation = leaky ? .leakyRelu(alpha: Self.alpha) : .identity
                var outputs: [OpCase.Initial] = [accumulate ? .values(oldW) : .poison(wCount)]
                if db { outputs.append(accumulate ? .values(oldB) : .poison(s.outChannels)) }
                let terms = Tolerance.sum(s.batch * s.height * s.width)
                cases.append(OpCase("conv2dBackwardFilter \(Self.describe(s))\(Self.label(leaky))"
                                    + "\(db ? " +db" : "")\(accumulate ? " accumulate" : "")",
                                    inputs: leaky ? [x, dy, y] : [x, dy], outputs: outputs, tolerance: terms) { i, o in
                    .conv2dBackwardFilter(x: i[0], dy: i[1], dw: o[0], db: db ? o[1] : nil, shape: s,
                                          activation: activation, output: leaky ? i[2] : nil, accumulate: accumulate)
                })
            }
        }
        try checkOnAllDevices(cases, alsoOn: [Self.cpuWithBLASConvolution] + Self.openCLWithGPUTuning())
    }

    /// The convolutions of the lines32 encoder, decoder and critic (depth 16, latent 16 at 2×2), as (size,
    /// cin, cout, kernel).
    static let lines32Convolutions: [(size: Int, cin: Int, cout: Int, kernel: Int)] = [
        (32, 1, 16, 1), (32, 16, 16, 3), (16, 16, 32, 3), (16, 32, 32, 3), (8, 32, 64, 3), (8, 64, 64, 3),
        (4, 64, 128, 3), (4, 128, 128, 3), (2, 128, 256, 3), (2, 256, 16, 3), (2, 256, 1, 3),
        (2, 16, 128, 3), (2, 128, 128, 3), (4, 128, 64, 3), (4, 64, 64, 3), (8, 64, 32, 3), (8, 32, 32, 3),
        (16, 32, 16, 3), (16, 16, 16, 3), (32, 16, 16, 3), (32, 16, 1, 3),
    ]

    /// PoCL's default (CPU) tuning runs every lines32 convolution op, forward, input gradient and filter
    /// gradient with db (overwriting and accumulating), fused leaky ReLU or not, as exactly one kernel launch.
    /// The filter gradient needs no second (chunk-sum) pass when it is tiny or its work-items alone give two per
    /// compute unit; the fewest among the non-tiny lines32 filter gradients is 9 (the 16 → 1 output layer), so
    /// the tuning is the default one for a device of at most 4 compute units (what CI and this machine have;
    /// larger CPUs split that layer's pixel sums and add them in a second launch).
    func testLines32ConvolutionsLaunchOneKernelEachOnPoCLDefaultTuning() throws {
        let device = try TestDevices.freshOpenCL()
        var info = device.info
        info.computeUnits = min(info.computeUnits, 4)
        info.type = .cpu  // the CPU tuning on whatever device runs the tests (a GPU runs its kernels too)
        device.tuning = OpenCLTuning.defaults(for: info)
        XCTAssertTrue(device.tuning.serialWorkItems, "the default tuning of a CPU device")
        var rng = TestRandom.generator(self)
        for batch in [64, 128] {
            for c in Self.lines32Convolutions {
                let s = ConvShape(batch: batch, height: c.size, width: c.size, inChannels: c.cin, outChannels: c.cout,
                                  kernel: c.kernel)
                let pixels = batch * c.size * c.size
                let x = try device.upload(TestRandom.uniform(pixels * c.cin, using: &rng))
                let w = try device.upload(TestRandom.uniform(c.kernel * c.kernel * c.cin * c.cout, using: &rng))
                let b = try device.upload(TestRandom.uniform(c.cout, using: &rng))
                let y = try device.allocate(pixels * c.cout)
                let dy = try device.upload(TestRandom.uniform(pixels * c.cout, using: &rng))
                let dx = try device.allocate(pixels * c.cin)
                let dw = try device.allocate(c.kernel * c.kernel * c.cin * c.cout)
                let db = try device.allocate(c.cout)
                for activation in [Activation.identity, .leakyRelu(alpha: Self.alpha)] {
                    let output = activation.isIdentity ? nil : y
                    let ops: [Op] = [
                        .conv2d(x: x, w: w, bias: b, y: y, shape: s, activation: activation),
                        .conv2dBackwardInput(dy: dy, w: w, dx: dx, shape: s, activation: activation, output: output),
                        .conv2dBackwardFilter(x: x, dy: dy, dw: dw, db: db, shape: s, activation: activation,
                                              output: output, accumulate: false),
                        .conv2dBackwardFilter(x: x, dy: dy, dw: dw, db: db, shape: s, activation: activation,
                                              output: output, accumulate: true),
                    ]
                    for op in ops {
                        let before = device.launchCount
                        try device.run(op)
                        XCTAssertEqual(device.launchCount - before, 1, "\(op.name) \(Self.describe(s)): launches")
                    }
                }
                try device.synchronize()
            }
        }
    }

    // MARK: Pooling and upsampling

    func testAvgPoolAndUpsample() throws {
        var rng = TestRandom.generator(self)
        var cases: [OpCase] = []
        // Shapes with even h and w for the pooled side.
        let even = [(1, 2, 2, 1), (3, 4, 6, 3), (1, 8, 8, 17), (3, 2, 10, 7), (2, 32, 32, 16)]
        for (n, h, w, c) in even {
            let s = ImageShape(batch: n, height: h, width: w, channels: c)
            let x = TestRandom.uniform(s.count, using: &rng)
            let dy = TestRandom.uniform(s.count / 4, using: &rng)
            cases.append(OpCase("avgPool2x2 x \([n, h, w, c])", inputs: [x], outputs: [.poison(s.count / 4)],
                                tolerance: .arithmetic) { i, o in .avgPool2x2(x: i[0], y: o[0], shape: s) })
            cases.append(OpCase("avgPool2x2Backward dx \([n, h, w, c])", inputs: [dy], outputs: [.poison(s.count)],
                                tolerance: .arithmetic) { i, o in .avgPool2x2Backward(dy: i[0], dx: o[0], shape: s) })
        }
        let any = [(1, 1, 1, 1), (3, 2, 5, 3), (1, 5, 5, 17), (3, 4, 4, 16), (1, 7, 1, 2), (2, 16, 16, 16)]
        for (n, h, w, c) in any {
            let s = ImageShape(batch: n, height: h, width: w, channels: c)
            let x = TestRandom.uniform(s.count, using: &rng)
            let dy = TestRandom.uniform(4 * s.count, using: &rng)
            cases.append(OpCase("upsample2x x \([n, h, w, c])", inputs: [x], outputs: [.poison(4 * s.count)],
                                tolerance: .exact) { i, o in .upsample2x(x: i[0], y: o[0], shape: s) })
            cases.append(OpCase("upsample2xBackward dx \([n, h, w, c])", inputs: [dy], outputs: [.poison(s.count)],
                                tolerance: .arithmetic) { i, o in .upsample2xBackward(dy: i[0], dx: o[0], shape: s) })
        }
        try checkOnAllDevices(cases)
    }

    // MARK: Data movement

    func testCopyAxisRange() throws {
        var rng = TestRandom.generator(self)
        // (outer, srcAxis, dstAxis, inner, srcStart, dstStart, length)
        let configs = [(1, 7, 7, 1, 0, 0, 7), (3, 5, 9, 4, 1, 2, 3), (2, 33, 65, 1, 0, 32, 33),
                       (7, 1, 3, 5, 0, 2, 1), (1, 65, 33, 3, 10, 0, 33), (3, 31, 31, 17, 30, 0, 1)]
        var cases: [OpCase] = []
        for (outer, srcAxis, dstAxis, inner, srcStart, dstStart, length) in configs {
            let src = TestRandom.uniform(outer * srcAxis * inner, using: &rng)
            // dst starts with known values: the elements outside the range must keep them.
            let dst = TestRandom.uniform(outer * dstAxis * inner, using: &rng)
            cases.append(OpCase("copyAxisRange outer=\(outer) src=\(srcAxis)@\(srcStart) dst=\(dstAxis)@\(dstStart) "
                                + "inner=\(inner) length=\(length)", inputs: [src], outputs: [.values(dst)],
                                tolerance: .exact) { i, o in
                .copyAxisRange(src: i[0], dst: o[0], outer: outer, srcAxis: srcAxis, dstAxis: dstAxis, inner: inner,
                               srcStart: srcStart, dstStart: dstStart, length: length)
            })
        }
        try checkOnAllDevices(cases)
    }

    func testReverseAxis() throws {
        var rng = TestRandom.generator(self)
        var cases: [OpCase] = []
        for (outer, axis, inner) in [(1, 1, 1), (1, 7, 1), (3, 33, 5), (65, 2, 1), (2, 5, 17), (1, 64, 3072)] {
            let x = TestRandom.uniform(outer * axis * inner, using: &rng)
            cases.append(OpCase("reverseAxis [\(outer), \(axis), \(inner)]", inputs: [x],
                                outputs: [.poison(x.count)], tolerance: .exact) { i, o in
                .reverseAxis(x: i[0], out: o[0], outer: outer, axis: axis, inner: inner)
            })
        }
        try checkOnAllDevices(cases)
    }

    func testGatherRows() throws {
        var rng = TestRandom.generator(self)
        var cases: [OpCase] = []
        for (rows, tableRows, columns) in [(1, 1, 1), (7, 3, 5), (33, 65, 1), (65, 7, 33), (3, 10, 31)] {
            let table = TestRandom.uniform(tableRows * columns, using: &rng)
            let index = TestRandom.indices(rows, below: tableRows, using: &rng)
            cases.append(OpCase("gatherRows rows=\(rows) table=\(tableRows)x\(columns)", inputs: [table, index],
                                outputs: [.poison(rows * columns)], tolerance: .exact) { i, o in
                .gatherRows(table: i[0], index: i[1], out: o[0], rows: rows, tableRows: tableRows, columns: columns)
            })
        }
        try checkOnAllDevices(cases)
    }

    func testOneHot() throws {
        var rng = TestRandom.generator(self)
        var cases: [OpCase] = []
        for (rows, depth) in [(1, 1), (7, 3), (33, 10), (65, 65), (3, 1000)] {
            let index = TestRandom.indices(rows, below: depth, using: &rng)
            cases.append(OpCase("oneHot rows=\(rows) depth=\(depth)", inputs: [index],
                                outputs: [.poison(rows * depth)], tolerance: .exact) { i, o in
                .oneHot(index: i[0], out: o[0], rows: rows, depth: depth)
            })
        }
        try checkOnAllDevices(cases)
    }

    // MARK: Losses

    func testSoftmaxCrossEntropy() throws {
        var rng = TestRandom.generator(self)
        var cases: [OpCase] = []
        for (k, (rows, classes)) in [(1, 1), (1, 7), (3, 10), (7, 33), (3, 65), (64, 10)].enumerated() {
            var logits = TestRandom.uniform(rows * classes, using: &rng)
            // A row of large logits: a naive exp overflows float32 there.
            if rows >= 3 { for c in 0..<classes { logits[classes + c] += 100 } }
            var labels: [Float]
            if k % 2 == 0 {  // one-hot labels
                let index = TestRandom.indices(rows, below: classes, using: &rng)
                labels = (0..<rows * classes).map { Float($0 % classes) == index[$0 / classes] ? 1 : 0 }
            } else {  // soft labels: each row a probability vector
                labels = TestRandom.positive(rows * classes, in: 0.05...1, using: &rng)
                for r in 0..<rows {
                    let total = labels[(r * classes)..<((r + 1) * classes)].reduce(0, +)
                    for c in 0..<classes { labels[r * classes + c] /= total }
                }
            }
            let dloss = TestRandom.uniform(rows, excluding: 0.1, using: &rng)
            let labelKind = k % 2 == 0 ? "one-hot" : "soft"
            cases.append(OpCase("softmaxCrossEntropy rows=\(rows) classes=\(classes) \(labelKind)",
                                inputs: [logits, labels], outputs: [.poison(rows)], tolerance: .compound) { i, o in
                .softmaxCrossEntropy(logits: i[0], labels: i[1], loss: o[0], rows: rows, classes: classes)
            })
            cases.append(OpCase("softmaxCrossEntropyBackward rows=\(rows) classes=\(classes) \(labelKind)",
                                inputs: [logits, labels, dloss], outputs: [.poison(rows * classes)],
                                tolerance: .compound) { i, o in
                .softmaxCrossEntropyBackward(logits: i[0], labels: i[1], dloss: i[2], dlogits: o[0], rows: rows,
                                             classes: classes)
            })
        }
        try checkOnAllDevices(cases)
    }

    /// The one-op squared-error loss and its gradient: elementwise (columns 1) and on row means, over all rows
    /// or a range, with and without a target, overwriting or accumulating.
    func testSquaredErrorMean() throws {
        var rng = TestRandom.generator(self)
        var cases: [OpCase] = []
        let ranges = [RowRange(rows: 1, columns: 1, start: 0, count: 1), RowRange(rows: 33, columns: 1, start: 0, count: 33),
                      RowRange(rows: 65, columns: 1, start: 7, count: 31), RowRange(rows: 40_001, columns: 1, start: 0, count: 40_001),
                      RowRange(rows: 7, columns: 5, start: 0, count: 7), RowRange(rows: 128, columns: 64, start: 64, count: 64),
                      RowRange(rows: 31, columns: 17, start: 3, count: 11), RowRange(rows: 2 * 1024, columns: 1, start: 0, count: 1024)]
        for (k, r) in ranges.enumerated() {
            let a = TestRandom.uniform(r.rows * r.columns, using: &rng)
            let target: [Float]? = k % 3 == 2 ? nil : TestRandom.uniform(r.count, using: &rng)
            let dloss = TestRandom.uniform(1, excluding: 0.1, using: &rng)
            let inputs = [a] + (target.map { [$0] } ?? [])
            let name = "rows \(r.rows)x\(r.columns) range \(r.start)..<\(r.start + r.count)\(target == nil ? " no target" : "")"
            cases.append(OpCase("squaredErrorMean \(name)", inputs: inputs, outputs: [.poison(1)],
                                tolerance: .sum(r.count * r.columns)) { i, o in
                .squaredErrorMean(a: i[0], target: i.count > 1 ? i[1] : nil, loss: o[0], range: r)
            })
            cases.append(OpCase("squaredErrorMeanBackward \(name)", inputs: inputs + [dloss],
                                outputs: [.poison(r.rows * r.columns)], tolerance: .sum(r.columns)) { i, o in
                .squaredErrorMeanBackward(a: i[0], target: i.count > 2 ? i[1] : nil, dloss: i[i.count - 1], da: o[0],
                                          range: r, accumulate: false)
            })
            let existing = TestRandom.uniform(r.rows * r.columns, using: &rng)
            cases.append(OpCase("squaredErrorMeanBackward accumulating \(name)", inputs: inputs + [dloss],
                                outputs: [.values(existing)], tolerance: .sum(r.columns)) { i, o in
                .squaredErrorMeanBackward(a: i[0], target: i.count > 2 ? i[1] : nil, dloss: i[i.count - 1], da: o[0],
                                          range: r, accumulate: true)
            })
        }
        try checkOnAllDevices(cases)
    }

    func testAccumulateScalars() throws {
        var rng = TestRandom.generator(self)
        var cases: [OpCase] = []
        for count in [1, 3, 7, 8, 9, 17] {
            let sources = (0..<count).map { _ in TestRandom.uniform(1, excluding: 0.1, using: &rng) }
            // Two steps into sums that already hold values: the op adds, in place.
            cases.append(OpCase("accumulateScalars \(count) sources, 2 steps", inputs: sources,
                                outputs: [.values(TestRandom.uniform(count, using: &rng))],
                                tolerance: .arithmetic) { i, o in
                [.accumulateScalars(sources: i, out: o[0]), .accumulateScalars(sources: i, out: o[0])]
            })
        }
        try checkOnAllDevices(cases)
    }

    // MARK: Optimiser

    func testAdam() throws {
        var rng = TestRandom.generator(self)
        var cases: [OpCase] = []
        for (k, n) in Self.sizes.enumerated() {
            let hyper = AdamStep(learningRateT: Float.random(in: 1e-3...1e-2, using: &rng),
                                 beta1: k % 2 == 0 ? 0.9 : 0.5, beta2: 0.999, epsilon: 1e-8)
            let param = TestRandom.uniform(n, using: &rng)
            let m = TestRandom.uniform(n, in: -1...1, using: &rng)
            let v = TestRandom.positive(n, in: 0.01...1, using: &rng)
            // Three steps with different gradients: the state must accumulate in place.
            let grads = (0..<3).map { _ in TestRandom.uniform(n, using: &rng) }
            cases.append(OpCase("adam n=\(n) \(hyper), 3 steps", inputs: grads,
                                outputs: [.values(param), .values(m), .values(v)],
                                tolerance: .arithmetic) { i, o in
                i.map { .adam(param: o[0], grad: $0, m: o[1], v: o[2], hyper: hyper) }
            })
        }
        try checkOnAllDevices(cases)
    }
}
