import Foundation

/// The closed table of primitive operations every device implements. Tensor-level operations, their
/// gradients, losses, layers and optimisers are all built from these. Buffers are dense, row-major
/// float32; image tensors are NHWC and convolution filters HWIO (`[kh, kw, cin, cout]`), as in the
/// TensorFlow reference.
///
/// Adding an op: a case here (with `name`, `flops` and `bytes`), a CPU implementation, an OpenCL kernel
/// in `Kernels/`, a tensor-level function with its backward rule, and a row in the op tests.
public enum Op {
    /// out[i] = value
    case fill(out: DeviceBuffer, value: Float)
    /// out[i] = f(x[i]) (see `UnaryFunction` for the meaning of `alpha`, `beta`)
    case unary(UnaryFunction, x: DeviceBuffer, out: DeviceBuffer, alpha: Float, beta: Float)
    /// out[i] = f(a[ia], b[ib]) with NumPy broadcasting described by `layout`.
    case binary(BinaryFunction, a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer, layout: BroadcastLayout,
                alpha: Float)
    /// out = sum of x over the axes where `layout.reduced` is true (out has those axes of size 1).
    case reduceSum(x: DeviceBuffer, out: DeviceBuffer, layout: ReduceLayout)
    /// out[o, i] = index (as a float) of the max (or min) of x[o, :, i] over the middle axis; the first
    /// such index on ties.
    case argReduce(x: DeviceBuffer, out: DeviceBuffer, outer: Int, axis: Int, inner: Int, findMax: Bool)
    /// C = alpha·op(A)·op(B) + beta·C, with op(A) m×k, op(B) k×n, C m×n, all row-major and dense.
    /// A is stored k×m when transA, B is stored n×k when transB. beta = 0 ignores C's old contents.
    case gemm(a: DeviceBuffer, b: DeviceBuffer, c: DeviceBuffer, shape: GemmShape)
    /// 2-D convolution, stride 1, 'same' zero padding done inside the kernel: y = act(conv(x, w) + bias).
    /// x: [n, h, w, cin], w: [k, k, cin, cout], bias: [cout] or nil, y: [n, h, w, cout].
    case conv2d(x: DeviceBuffer, w: DeviceBuffer, bias: DeviceBuffer?, y: DeviceBuffer, shape: ConvShape, activation: Activation)
    /// dx = conv2d input-gradient of (dy ⊙ act'(output)), where `output` is the saved forward output y of this
    /// layer (required unless activation is .identity; act' from its sign: 1 where y > 0, alpha elsewhere).
    case conv2dBackwardInput(dy: DeviceBuffer, w: DeviceBuffer, dx: DeviceBuffer, shape: ConvShape, activation: Activation, output: DeviceBuffer?)
    /// With g = dy ⊙ act'(output): dw = conv2d filter-gradient of (x, g) and, when `db` is given, db = Σ_{n,h,w} g,
    /// in the same kernel(s). accumulate: dw += …, db += … instead of overwriting (a parameter used twice, or
    /// gradients summed into a flat gradient buffer).
    case conv2dBackwardFilter(x: DeviceBuffer, dy: DeviceBuffer, dw: DeviceBuffer, db: DeviceBuffer?, shape: ConvShape, activation: Activation, output: DeviceBuffer?, accumulate: Bool)
    /// y[n, i, j, c] = mean of x over the 2×2 window at (2i, 2j). x: [n, 2h, 2w, c] → y: [n, h, w, c]
    /// with `shape` describing x (h and w even).
    case avgPool2x2(x: DeviceBuffer, y: DeviceBuffer, shape: ImageShape)
    /// dx[n, i, j, c] = dy[n, i/2, j/2, c] / 4. `shape` describes dx.
    case avgPool2x2Backward(dy: DeviceBuffer, dx: DeviceBuffer, shape: ImageShape)
    /// y[n, i, j, c] = x[n, i/2, j/2, c]. `shape` describes x; y is [n, 2h, 2w, c].
    case upsample2x(x: DeviceBuffer, y: DeviceBuffer, shape: ImageShape)
    /// dx[n, i, j, c] = sum of dy over the 2×2 block at (2i, 2j). `shape` describes dx.
    case upsample2xBackward(dy: DeviceBuffer, dx: DeviceBuffer, shape: ImageShape)
    /// Viewing src as [outer, srcAxis, inner] and dst as [outer, dstAxis, inner]:
    /// dst[o, dstStart + i, :] = src[o, srcStart + i, :] for i in 0..<length. Other dst elements are
    /// left unchanged. Slicing, concatenation and their gradients are built from this.
    case copyAxisRange(src: DeviceBuffer, dst: DeviceBuffer, outer: Int, srcAxis: Int, dstAxis: Int, inner: Int,
                       srcStart: Int, dstStart: Int, length: Int)
    /// Viewing x and out as [outer, axis, inner]: out[o, i, :] = x[o, axis - 1 - i, :].
    case reverseAxis(x: DeviceBuffer, out: DeviceBuffer, outer: Int, axis: Int, inner: Int)
    /// out[r, :] = table[index[r], :] for table [tableRows, columns], index [rows] (integral floats).
    case gatherRows(table: DeviceBuffer, index: DeviceBuffer, out: DeviceBuffer, rows: Int, tableRows: Int,
                    columns: Int)
    /// out[r, c] = (c == index[r]) ? 1 : 0 for out [rows, depth].
    case oneHot(index: DeviceBuffer, out: DeviceBuffer, rows: Int, depth: Int)
    /// loss[r] = -Σ_c labels[r, c] · log softmax(logits[r, :])_c, for [rows, classes].
    case softmaxCrossEntropy(logits: DeviceBuffer, labels: DeviceBuffer, loss: DeviceBuffer, rows: Int,
                             classes: Int)
    /// dlogits[r, c] = dloss[r] · (softmax(logits[r, :])_c − labels[r, c]).
    case softmaxCrossEntropyBackward(logits: DeviceBuffer, labels: DeviceBuffer, dloss: DeviceBuffer,
                                     dlogits: DeviceBuffer, rows: Int, classes: Int)
    /// Counter-based random numbers: element i depends only on (seed, offset + i), so every device
    /// produces the same stream (see `RandomBits`).
    case random(RandomDistribution, out: DeviceBuffer, seed: UInt64, offset: UInt64)
    /// One TF1 Adam step on every element, in place:
    /// m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; p −= lrT · m / (√v + ε), where
    /// lrT = lr·√(1−β2^t)/(1−β1^t) is computed on the host.
    case adam(param: DeviceBuffer, grad: DeviceBuffer, m: DeviceBuffer, v: DeviceBuffer, hyper: AdamStep)
    /// A squared-error loss in one op. Viewing `a` as [rows, columns] (`range`):
    /// loss[0] = (1/count) Σ_{i < count} (mean_c a[start + i, c] − t[i])², with t = target ([count]) or 0.
    /// Elementwise mean squared error is columns = 1; a critic's score (the mean of its output) regressed
    /// on α is columns = the output size of one sample.
    case squaredErrorMean(a: DeviceBuffer, target: DeviceBuffer?, loss: DeviceBuffer, range: RowRange)
    /// The gradient with respect to `a` (the target is a constant): for the rows start ..< start + count,
    /// da[r, c] = dloss[0] · 2·(mean_c a[r, :] − t[r − start]) / (count · columns); 0 in the other rows, or,
    /// with `accumulate`, added to da (whose other rows are left as they are).
    case squaredErrorMeanBackward(a: DeviceBuffer, target: DeviceBuffer?, dloss: DeviceBuffer, da: DeviceBuffer,
                                  range: RowRange, accumulate: Bool)
    /// out[i] += sources[i][0] for each source: a step's losses added to their running sums in one op.
    case accumulateScalars(sources: [DeviceBuffer], out: DeviceBuffer)
}

/// Rows `start ..< start + count` of a buffer viewed as [rows, columns].
public struct RowRange: Sendable, Equatable {
    public var rows: Int, columns: Int, start: Int, count: Int
    public init(rows: Int, columns: Int, start: Int, count: Int) {
        self.rows = rows; self.columns = columns; self.start = start; self.count = count
    }
}

/// The activation fused into a convolution's epilogue (forward) and prologue (backward).
public enum Activation: Sendable, Equatable { case identity; case leakyRelu(alpha: Float) }

extension Activation {
    /// The leaky ReLU slope for negative inputs: 1 for identity (so act'(y) = 1 everywhere).
    public var alpha: Float {
        switch self {
        case .identity: return 1
        case let .leakyRelu(alpha): return alpha
        }
    }

    public var isIdentity: Bool { self == .identity }

    /// A short tag for profile names: "" or "_lrelu".
    public var nameSuffix: String { isIdentity ? "" : "_lrelu" }
}

public enum UnaryFunction: String, CaseIterable, Sendable {
    /// alpha·x + beta (scale and shift: scalar add, multiply, subtract-from, negate, copy)
    case affine
    /// alpha / x
    case reciprocal
    case exp, log, sqrt, square, abs
    /// +1 for x > 0, −1 for x < 0, 0 at 0
    case sign
    /// x > 0 ? x : alpha·x (ReLU is alpha = 0; the reference's leaky ReLU is alpha = 0.2)
    case leakyRelu
    /// 1 / (1 + e^−x)
    case sigmoid
}

public enum BinaryFunction: String, CaseIterable, Sendable {
    case add, sub, mul, div
    /// a > 0 ? b : alpha·b (the gradient of leakyRelu: a is the forward input, b the incoming gradient)
    case leakyReluBackward
    /// Elementwise sigmoid cross-entropy with logits a and labels b: max(a, 0) − a·b + log(1 + e^−|a|)
    case sigmoidCrossEntropy
    /// max(a, b)
    case maximum
    /// 1 where a > b, else 0
    case greater
}

public enum RandomDistribution: Sendable, Equatable {
    /// Uniform in [0, 1) with 24 random bits.
    case uniform
    /// Standard normal (Box–Muller on two uniforms).
    case normal
    /// 1/keep with probability keep, else 0 (inverted dropout mask).
    case dropout(keep: Float)
}

/// Broadcasting of a binary op, collapsed to at most `BroadcastLayout.maxRank` dimensions. The output is
/// dense with `shape`; `aStrides`/`bStrides` are the element strides of each input (0 on a broadcast
/// dimension).
public struct BroadcastLayout: Sendable, Equatable {
    public static let maxRank = 6
    public var shape: [Int]
    public var aStrides: [Int]
    public var bStrides: [Int]

    public init(shape: [Int], aStrides: [Int], bStrides: [Int]) {
        precondition(shape.count == aStrides.count && shape.count == bStrides.count && shape.count <= Self.maxRank)
        self.shape = shape
        self.aStrides = aStrides
        self.bStrides = bStrides
    }

    /// Both inputs dense with the output's shape: the fast path.
    public var isElementwise: Bool {
        let dense = denseStrides(shape)
        return aStrides == dense && bStrides == dense
    }

    public var count: Int { shape.reduce(1, *) }

    /// The layout for `a` and `b` of the given shapes, NumPy rules (shapes aligned at the right).
    /// Adjacent dimensions that broadcast the same way are merged. Returns nil when they do not broadcast.
    public static func make(_ aShape: [Int], _ bShape: [Int]) -> BroadcastLayout? {
        let rank = max(aShape.count, bShape.count)
        let a = Array(repeating: 1, count: rank - aShape.count) + aShape
        let b = Array(repeating: 1, count: rank - bShape.count) + bShape
        var out: [Int] = []
        for (x, y) in zip(a, b) {
            guard x == y || x == 1 || y == 1 else { return nil }
            out.append(max(x, y))
        }
        let aDense = denseStrides(a), bDense = denseStrides(b)
        // Walk from the innermost dimension out, merging a dimension into the group inside it when
        // both inputs continue contiguously (or both stay broadcast) across the pair.
        var shape: [Int] = [], aS: [Int] = [], bS: [Int] = []
        for i in stride(from: rank - 1, through: 0, by: -1) where out[i] != 1 {
            let sa = a[i] == 1 ? 0 : aDense[i]
            let sb = b[i] == 1 ? 0 : bDense[i]
            if !shape.isEmpty, sa == aS[0] * shape[0], sb == bS[0] * shape[0] {
                shape[0] *= out[i]
            } else {
                shape.insert(out[i], at: 0); aS.insert(sa, at: 0); bS.insert(sb, at: 0)
            }
        }
        if shape.isEmpty { shape = [1]; aS = [0]; bS = [0] }
        guard shape.count <= maxRank else { return nil }
        return BroadcastLayout(shape: shape, aStrides: aS, bStrides: bS)
    }
}

/// A sum over some axes of a dense tensor, collapsed: adjacent axes with the same `reduced` flag are
/// merged. The output is dense with the kept axes in order.
public struct ReduceLayout: Sendable, Equatable {
    public static let maxRank = 6
    public var shape: [Int]
    public var reduced: [Bool]

    public init(shape: [Int], reduced: [Bool]) {
        precondition(shape.count == reduced.count)
        var s: [Int] = [], r: [Bool] = []
        for (n, flag) in zip(shape, reduced) where n != 1 {
            if let last = r.last, last == flag { s[s.count - 1] *= n } else { s.append(n); r.append(flag) }
        }
        if s.isEmpty { s = [1]; r = [false] }
        precondition(s.count <= Self.maxRank, "reduction layout too complex")
        self.shape = s
        self.reduced = r
    }

    public var inputCount: Int { shape.reduce(1, *) }
    public var outputCount: Int { zip(shape, reduced).reduce(1) { $0 * ($1.1 ? 1 : $1.0) } }
    public var reducedCount: Int { inputCount / outputCount }
}

public struct GemmShape: Sendable, Equatable {
    public var m: Int, n: Int, k: Int
    public var transA: Bool, transB: Bool
    public var alpha: Float, beta: Float

    public init(m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false, alpha: Float = 1,
                beta: Float = 0) {
        self.m = m; self.n = n; self.k = k
        self.transA = transA; self.transB = transB
        self.alpha = alpha; self.beta = beta
    }
}

public struct ConvShape: Sendable, Equatable {
    public var batch: Int, height: Int, width: Int
    public var inChannels: Int, outChannels: Int
    /// Kernel size: 1 or 3 (odd, 'same' padding of kernel / 2).
    public var kernel: Int

    public init(batch: Int, height: Int, width: Int, inChannels: Int, outChannels: Int, kernel: Int) {
        self.batch = batch; self.height = height; self.width = width
        self.inChannels = inChannels; self.outChannels = outChannels; self.kernel = kernel
    }

    public var pad: Int { kernel / 2 }
    /// Multiply-adds ×2 of the forward convolution (each backward pass costs the same).
    public var flops: Double {
        2 * Double(batch * height * width) * Double(kernel * kernel * inChannels) * Double(outChannels)
    }
}

public struct ImageShape: Sendable, Equatable {
    public var batch: Int, height: Int, width: Int, channels: Int
    public init(batch: Int, height: Int, width: Int, channels: Int) {
        self.batch = batch; self.height = height; self.width = width; self.channels = channels
    }
    public var count: Int { batch * height * width * channels }
}

public struct AdamStep: Sendable, Equatable {
    public var learningRateT: Float, beta1: Float, beta2: Float, epsilon: Float
    public init(learningRateT: Float, beta1: Float, beta2: Float, epsilon: Float) {
        self.learningRateT = learningRateT; self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon
    }
}

public func denseStrides(_ shape: [Int]) -> [Int] {
    var strides = Array(repeating: 1, count: shape.count)
    var s = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) { strides[i] = s; s *= shape[i] }
    return strides
}

extension Op {
    /// Name used in profiles: the op and its variant.
    public var name: String {
        switch self {
        case .fill: return "fill"
        case let .unary(f, _, _, _, _): return "unary_\(f.rawValue)"
        case let .binary(f, _, _, _, layout, _): return "binary_\(f.rawValue)\(layout.isElementwise ? "" : "_bcast")"
        case .reduceSum: return "reduce_sum"
        case let .argReduce(_, _, _, _, _, findMax): return findMax ? "argmax" : "argmin"
        case .gemm: return "gemm"
        case let .conv2d(_, _, _, _, s, act): return "conv2d_\(s.kernel)x\(s.kernel)\(act.nameSuffix)"
        case let .conv2dBackwardInput(_, _, _, s, act, _): return "conv2d_\(s.kernel)x\(s.kernel)\(act.nameSuffix)_dx"
        case let .conv2dBackwardFilter(_, _, _, db, s, act, _, _):
            return "conv2d_\(s.kernel)x\(s.kernel)\(act.nameSuffix)_dw\(db == nil ? "" : "_db")"
        case .avgPool2x2: return "avgpool2x2"
        case .avgPool2x2Backward: return "avgpool2x2_backward"
        case .upsample2x: return "upsample2x"
        case .upsample2xBackward: return "upsample2x_backward"
        case .copyAxisRange: return "copy_axis_range"
        case .reverseAxis: return "reverse_axis"
        case .gatherRows: return "gather_rows"
        case .oneHot: return "one_hot"
        case .softmaxCrossEntropy: return "softmax_xent"
        case .softmaxCrossEntropyBackward: return "softmax_xent_backward"
        case let .random(d, _, _, _):
            switch d {
            case .uniform: return "random_uniform"
            case .normal: return "random_normal"
            case .dropout: return "random_dropout"
            }
        case .adam: return "adam"
        case .squaredErrorMean: return "squared_error_mean"
        case .squaredErrorMeanBackward: return "squared_error_mean_backward"
        case .accumulateScalars: return "accumulate_scalars"
        }
    }

    /// Floating-point operations, where they are meaningful (products and convolutions).
    public var flops: Double {
        switch self {
        case let .gemm(_, _, _, s): return 2 * Double(s.m) * Double(s.n) * Double(s.k)
        case let .conv2d(_, _, _, _, s, _), let .conv2dBackwardInput(_, _, _, s, _, _),
             let .conv2dBackwardFilter(_, _, _, _, s, _, _, _):
            return s.flops
        default: return 0
        }
    }

    /// Bytes that must cross memory at least once (inputs read plus outputs written).
    public var bytes: Double {
        let f = Double(MemoryLayout<Float>.stride)
        switch self {
        case let .fill(out, _): return f * Double(out.count)
        case let .unary(_, x, out, _, _): return f * Double(x.count + out.count)
        case let .binary(_, a, b, out, _, _): return f * Double(a.count + b.count + out.count)
        case let .reduceSum(x, out, _): return f * Double(x.count + out.count)
        case let .argReduce(x, out, _, _, _, _): return f * Double(x.count + out.count)
        case let .gemm(a, b, c, s): return f * Double(a.count + b.count + c.count * (s.beta == 0 ? 1 : 2))
        case let .conv2d(x, w, bias, y, _, _): return f * Double(x.count + w.count + (bias?.count ?? 0) + y.count)
        case let .conv2dBackwardInput(dy, w, dx, _, _, output):
            return f * Double(dy.count + w.count + dx.count + (output?.count ?? 0))
        case let .conv2dBackwardFilter(x, dy, dw, db, _, _, output, accumulate):
            // Accumulating reads the old dw and db as well as writing them.
            let gradients = (dw.count + (db?.count ?? 0)) * (accumulate ? 2 : 1)
            return f * Double(x.count + dy.count + (output?.count ?? 0) + gradients)
        case let .avgPool2x2(x, y, _), let .upsample2x(x, y, _): return f * Double(x.count + y.count)
        case let .avgPool2x2Backward(dy, dx, _), let .upsample2xBackward(dy, dx, _): return f * Double(dy.count + dx.count)
        case let .copyAxisRange(_, _, outer, _, _, inner, _, _, length): return 2 * f * Double(outer * inner * length)
        case let .reverseAxis(x, out, _, _, _): return f * Double(x.count + out.count)
        case let .gatherRows(_, index, out, _, _, _): return f * Double(index.count + 2 * out.count)
        case let .oneHot(index, out, _, _): return f * Double(index.count + out.count)
        case let .softmaxCrossEntropy(logits, labels, loss, _, _): return f * Double(logits.count + labels.count + loss.count)
        case let .softmaxCrossEntropyBackward(logits, labels, dloss, dlogits, _, _):
            return f * Double(logits.count + labels.count + dloss.count + dlogits.count)
        case let .random(_, out, _, _): return f * Double(out.count)
        case let .adam(param, _, _, _, _): return f * Double(7 * param.count)
        case let .squaredErrorMean(_, target, _, r): return f * Double(r.count * r.columns + (target == nil ? 0 : r.count) + 1)
        case let .squaredErrorMeanBackward(_, target, _, _, r, accumulate):
            return f * Double(r.rows * r.columns * (accumulate ? 3 : 2) + (target == nil ? 0 : r.count) + 1)
        case let .accumulateScalars(sources, _): return f * Double(3 * sources.count)
        }
    }

    /// Every buffer the op touches, for the check that they all belong to the device running it.
    public var buffers: [DeviceBuffer] {
        switch self {
        case let .fill(out, _): return [out]
        case let .unary(_, x, out, _, _): return [x, out]
        case let .binary(_, a, b, out, _, _): return [a, b, out]
        case let .reduceSum(x, out, _): return [x, out]
        case let .argReduce(x, out, _, _, _, _): return [x, out]
        case let .gemm(a, b, c, _): return [a, b, c]
        case let .conv2d(x, w, bias, y, _, _): return [x, w, y] + (bias.map { [$0] } ?? [])
        case let .conv2dBackwardInput(dy, w, dx, _, _, output): return [dy, w, dx] + (output.map { [$0] } ?? [])
        case let .conv2dBackwardFilter(x, dy, dw, db, _, _, output, _):
            return [x, dy, dw] + (db.map { [$0] } ?? []) + (output.map { [$0] } ?? [])
        case let .avgPool2x2(x, y, _), let .upsample2x(x, y, _): return [x, y]
        case let .avgPool2x2Backward(dy, dx, _), let .upsample2xBackward(dy, dx, _): return [dy, dx]
        case let .copyAxisRange(src, dst, _, _, _, _, _, _, _): return [src, dst]
        case let .reverseAxis(x, out, _, _, _): return [x, out]
        case let .gatherRows(table, index, out, _, _, _): return [table, index, out]
        case let .oneHot(index, out, _, _): return [index, out]
        case let .softmaxCrossEntropy(logits, labels, loss, _, _): return [logits, labels, loss]
        case let .softmaxCrossEntropyBackward(logits, labels, dloss, dlogits, _, _): return [logits, labels, dloss, dlogits]
        case let .random(_, out, _, _): return [out]
        case let .adam(param, grad, m, v, _): return [param, grad, m, v]
        case let .squaredErrorMean(a, target, loss, _): return [a, loss] + (target.map { [$0] } ?? [])
        case let .squaredErrorMeanBackward(a, target, dloss, da, _, _): return [a, dloss, da] + (target.map { [$0] } ?? [])
        case let .accumulateScalars(sources, out): return sources + [out]
        }
    }
}

/// The counter-based generator both devices implement bit for bit: a 64-bit SplitMix/"squares"-style
/// hash of (seed, counter). `uniform` uses the top 24 bits, so it is exactly representable in float32
/// and identical on every device; `normal` applies Box–Muller to the uniforms of counters 2i and 2i+1
/// (log/cos may differ in the last ulp between devices).
public enum RandomBits {
    @inlinable
    public static func hash(seed: UInt64, counter: UInt64) -> UInt32 {
        var z = seed &+ counter &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z = z ^ (z >> 31)
        return UInt32(truncatingIfNeeded: z >> 32)
    }

    /// Uniform in [0, 1): the top 24 bits of the hash times 2^-24.
    @inlinable
    public static func uniform(seed: UInt64, counter: UInt64) -> Float {
        Float(hash(seed: seed, counter: counter) >> 8) * (1.0 / 16_777_216.0)
    }

    /// Standard normal for element i: Box–Muller with u1 from counter 2i (shifted into (0, 1]) and u2 from 2i+1.
    @inlinable
    public static func normal(seed: UInt64, index: UInt64) -> Float {
        let u1 = uniform(seed: seed, counter: 2 &* index) + (1.0 / 16_777_216.0)
        let u2 = uniform(seed: seed, counter: 2 &* index &+ 1)
        return (-2 * logf(u1)).squareRoot() * cosf(2 * Float.pi * u2)
    }
}
