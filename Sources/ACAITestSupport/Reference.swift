import ACAIDevice
import Foundation

/// Float64 reference implementations of every `Op`, written naively (plain loops, no tiling, no tricks) so
/// that they are easy to check by eye against the op table's documentation in `Op.swift`. Device results are
/// compared against these; inputs are float32 values widened exactly to Double.
public enum Reference {
    // MARK: Dispatch

    /// Host copies of device buffers, keyed by buffer identity.
    public typealias Memory = [ObjectIdentifier: [Double]]

    /// Applies `op` to the host copies in `memory` (every buffer the op touches must have an entry; outputs
    /// may hold anything, e.g. NaN, unless the op accumulates into them). One exhaustive switch, so a new op
    /// is a compile error here until it has a reference.
    public static func evaluate(_ op: Op, _ memory: inout Memory) {
        func get(_ b: DeviceBuffer) -> [Double] {
            guard let values = memory[ObjectIdentifier(b)] else {
                preconditionFailure("reference evaluation of \(op.name): a buffer has no host copy")
            }
            return values
        }
        func set(_ b: DeviceBuffer, _ values: [Double]) { memory[ObjectIdentifier(b)] = values }

        switch op {
        case let .fill(out, value):
            set(out, fill(count: out.count, value: value))
        case let .unary(f, x, out, alpha, beta):
            set(out, unary(f, get(x), alpha: Double(alpha), beta: Double(beta)))
        case let .binary(f, a, b, out, layout, alpha):
            set(out, binary(f, get(a), get(b), layout: layout, alpha: Double(alpha)))
        case let .reduceSum(x, out, layout):
            set(out, reduceSum(get(x), layout: layout))
        case let .argReduce(x, out, outer, axis, inner, findMax):
            set(out, argReduce(get(x), outer: outer, axis: axis, inner: inner, findMax: findMax))
        case let .gemm(a, b, c, shape):
            set(c, gemm(get(a), get(b), get(c), shape: shape))
        case let .conv2d(x, w, bias, y, shape, activation):
            set(y, activate(conv2d(get(x), get(w), bias: bias.map(get), shape: shape), activation))
        case let .conv2dBackwardInput(dy, w, dx, shape, activation, output):
            let g = masked(get(dy), by: output.map(get), activation)
            set(dx, conv2dBackwardInput(g, get(w), shape: shape))
        case let .conv2dBackwardFilter(x, dy, dw, db, shape, activation, output, accumulate):
            let g = masked(get(dy), by: output.map(get), activation)
            var dwValues = conv2dBackwardFilter(get(x), g, shape: shape)
            if accumulate { dwValues = zip(get(dw), dwValues).map { $0 + $1 } }
            set(dw, dwValues)
            if let db {
                var dbValues = biasGradient(g, channels: shape.outChannels)
                if accumulate { dbValues = zip(get(db), dbValues).map { $0 + $1 } }
                set(db, dbValues)
            }
        case let .avgPool2x2(x, y, shape):
            set(y, avgPool2x2(get(x), shape: shape))
        case let .avgPool2x2Backward(dy, dx, shape):
            set(dx, avgPool2x2Backward(get(dy), shape: shape))
        case let .upsample2x(x, y, shape):
            set(y, upsample2x(get(x), shape: shape))
        case let .upsample2xBackward(dy, dx, shape):
            set(dx, upsample2xBackward(get(dy), shape: shape))
        case let .copyAxisRange(src, dst, outer, srcAxis, dstAxis, inner, srcStart, dstStart, length):
            set(dst, copyAxisRange(get(src), into: get(dst), outer: outer, srcAxis: srcAxis, dstAxis: dstAxis,
                                   inner: inner, srcStart: srcStart, dstStart: dstStart, length: length))
        case let .reverseAxis(x, out, outer, axis, inner):
            set(out, reverseAxis(get(x), outer: outer, axis: axis, inner: inner))
        case let .gatherRows(table, index, out, rows, tableRows, columns):
            set(out, gatherRows(get(table), index: get(index), rows: rows, tableRows: tableRows, columns: columns))
        case let .oneHot(index, out, rows, depth):
            set(out, oneHot(get(index), rows: rows, depth: depth))
        case let .softmaxCrossEntropy(logits, labels, loss, rows, classes):
            set(loss, softmaxCrossEntropy(get(logits), labels: get(labels), rows: rows, classes: classes))
        case let .softmaxCrossEntropyBackward(logits, labels, dloss, dlogits, rows, classes):
            set(dlogits, softmaxCrossEntropyBackward(get(logits), labels: get(labels), dloss: get(dloss),
                                                     rows: rows, classes: classes))
        case let .random(distribution, out, seed, offset):
            set(out, random(distribution, count: out.count, seed: seed, offset: offset))
        case let .adam(param, grad, m, v, hyper):
            let r = adam(param: get(param), grad: get(grad), m: get(m), v: get(v), hyper: hyper)
            set(param, r.param)
            set(m, r.m)
            set(v, r.v)
        case let .squaredErrorMean(a, target, loss, range):
            set(loss, [squaredErrorMean(get(a), target: target.map(get), range: range)])
        case let .squaredErrorMeanBackward(a, target, dloss, da, range, accumulate):
            set(da, squaredErrorMeanBackward(get(a), target: target.map(get), dloss: get(dloss)[0], range: range,
                                             into: accumulate ? get(da) : nil))
        case let .accumulateScalars(sources, out):
            var sums = get(out)
            for (i, source) in sources.enumerated() { sums[i] += get(source)[0] }
            set(out, sums)
        }
    }

    // MARK: Squared-error loss

    static func rowMean(_ a: [Double], _ r: Int, _ columns: Int) -> Double {
        (0..<columns).reduce(0.0) { $0 + a[r * columns + $1] } / Double(columns)
    }

    public static func squaredErrorMean(_ a: [Double], target: [Double]?, range r: RowRange) -> Double {
        (0..<r.count).reduce(0.0) { s, i in
            let d = rowMean(a, r.start + i, r.columns) - (target?[i] ?? 0)
            return s + d * d
        } / Double(r.count)
    }

    /// The gradient, added to `existing` when given (the accumulating form), else with zeros outside the range.
    public static func squaredErrorMeanBackward(_ a: [Double], target: [Double]?, dloss: Double, range r: RowRange,
                                                into existing: [Double]?) -> [Double] {
        var out = existing ?? Array(repeating: 0, count: r.rows * r.columns)
        for row in r.start..<(r.start + r.count) {
            let g = dloss * 2 * (rowMean(a, row, r.columns) - (target?[row - r.start] ?? 0)) / Double(r.count * r.columns)
            for c in 0..<r.columns { out[row * r.columns + c] += g }
        }
        return out
    }

    // MARK: Elementwise

    public static func fill(count: Int, value: Float) -> [Double] {
        Array(repeating: Double(value), count: count)
    }

    public static func unary(_ f: UnaryFunction, _ x: Double, alpha: Double, beta: Double) -> Double {
        switch f {
        case .affine: return alpha * x + beta
        case .reciprocal: return alpha / x
        case .exp: return Foundation.exp(x)
        case .log: return Foundation.log(x)
        case .sqrt: return x.squareRoot()
        case .square: return x * x
        case .abs: return Swift.abs(x)
        case .sign: return x > 0 ? 1 : (x < 0 ? -1 : 0)
        case .leakyRelu: return x > 0 ? x : alpha * x
        case .sigmoid: return 1 / (1 + Foundation.exp(-x))
        }
    }

    public static func unary(_ f: UnaryFunction, _ x: [Double], alpha: Double, beta: Double) -> [Double] {
        x.map { unary(f, $0, alpha: alpha, beta: beta) }
    }

    public static func binary(_ f: BinaryFunction, _ a: Double, _ b: Double, alpha: Double) -> Double {
        switch f {
        case .add: return a + b
        case .sub: return a - b
        case .mul: return a * b
        case .div: return a / b
        case .leakyReluBackward: return a > 0 ? b : alpha * b
        case .sigmoidCrossEntropy: return Swift.max(a, 0) - a * b + Foundation.log1p(Foundation.exp(-Swift.abs(a)))
        case .maximum: return Swift.max(a, b)
        case .greater: return a > b ? 1 : 0
        }
    }

    /// A binary op through the strides of a `BroadcastLayout` (what a device sees).
    public static func binary(_ f: BinaryFunction, _ a: [Double], _ b: [Double], layout: BroadcastLayout,
                              alpha: Double) -> [Double] {
        let rank = layout.shape.count
        var out = [Double](repeating: 0, count: layout.count)
        var index = [Int](repeating: 0, count: rank)
        for o in 0..<out.count {
            var ia = 0, ib = 0
            for d in 0..<rank {
                ia += index[d] * layout.aStrides[d]
                ib += index[d] * layout.bStrides[d]
            }
            out[o] = binary(f, a[ia], b[ib], alpha: alpha)
            increment(&index, shape: layout.shape)
        }
        return out
    }

    /// A binary op with NumPy broadcasting of the original shapes (independent of `BroadcastLayout`): shapes
    /// aligned at the right, a size-1 dimension repeated.
    public static func broadcast(_ f: BinaryFunction, _ a: [Double], shape aShape: [Int], _ b: [Double],
                                 shape bShape: [Int], alpha: Double) -> (values: [Double], shape: [Int]) {
        let rank = max(aShape.count, bShape.count)
        let ap = Array(repeating: 1, count: rank - aShape.count) + aShape
        let bp = Array(repeating: 1, count: rank - bShape.count) + bShape
        var shape = [Int](repeating: 1, count: rank)
        for d in 0..<rank {
            precondition(ap[d] == bp[d] || ap[d] == 1 || bp[d] == 1, "shapes \(aShape) and \(bShape) do not broadcast")
            shape[d] = max(ap[d], bp[d])
        }
        // Element strides of each input, 0 along a dimension it repeats.
        let aStrides = repeatStrides(ap), bStrides = repeatStrides(bp)
        let count = shape.reduce(1, *)
        var out = [Double](repeating: 0, count: count)
        var index = [Int](repeating: 0, count: rank)
        for o in 0..<count {
            var ia = 0, ib = 0
            for d in 0..<rank {
                ia += index[d] * aStrides[d]
                ib += index[d] * bStrides[d]
            }
            out[o] = binary(f, a[ia], b[ib], alpha: alpha)
            increment(&index, shape: shape)
        }
        return (out, shape)
    }

    // MARK: Reductions

    /// Sum over the reduced axes of a `ReduceLayout` (what a device sees).
    public static func reduceSum(_ x: [Double], layout: ReduceLayout) -> [Double] {
        sum(x, shape: layout.shape, axes: Set(layout.reduced.indices.filter { layout.reduced[$0] }))
    }

    /// Sum of `x` (dense, `shape`) over `axes`, keeping them as size-1 axes (independent of `ReduceLayout`).
    public static func sum(_ x: [Double], shape: [Int], axes: Set<Int>) -> [Double] {
        let rank = shape.count
        var outShape = shape
        for d in axes { outShape[d] = 1 }
        let outStrides = repeatStrides(outShape)  // 0 along the summed axes
        var out = [Double](repeating: 0, count: outShape.reduce(1, *))
        var index = [Int](repeating: 0, count: rank)
        for i in 0..<x.count {
            var o = 0
            for d in 0..<rank { o += index[d] * outStrides[d] }
            out[o] += x[i]
            increment(&index, shape: shape)
        }
        return out
    }

    /// Index of the max (min) over the middle axis of [outer, axis, inner]; the first one on ties.
    public static func argReduce(_ x: [Double], outer: Int, axis: Int, inner: Int, findMax: Bool) -> [Double] {
        var out = [Double](repeating: 0, count: outer * inner)
        for o in 0..<outer {
            for i in 0..<inner {
                var best = 0
                for a in 1..<max(axis, 1) {
                    let candidate = x[(o * axis + a) * inner + i], current = x[(o * axis + best) * inner + i]
                    if findMax ? candidate > current : candidate < current { best = a }
                }
                out[o * inner + i] = Double(best)
            }
        }
        return out
    }

    // MARK: Products

    /// C = alpha·op(A)·op(B) + beta·C; with beta = 0 the old C is not read (it may be NaN).
    public static func gemm(_ a: [Double], _ b: [Double], _ c: [Double], shape s: GemmShape) -> [Double] {
        var out = [Double](repeating: 0, count: s.m * s.n)
        for i in 0..<s.m {
            for j in 0..<s.n {
                var acc = 0.0
                for p in 0..<s.k {
                    let av = s.transA ? a[p * s.m + i] : a[i * s.k + p]
                    let bv = s.transB ? b[j * s.k + p] : b[p * s.n + j]
                    acc += av * bv
                }
                out[i * s.n + j] = Double(s.alpha) * acc + (s.beta == 0 ? 0 : Double(s.beta) * c[i * s.n + j])
            }
        }
        return out
    }

    /// The fused activation applied to each element: v, or v > 0 ? v : alpha·v.
    public static func activate(_ v: [Double], _ activation: Activation) -> [Double] {
        guard case let .leakyRelu(alpha) = activation else { return v }
        return v.map { $0 > 0 ? $0 : Double(alpha) * $0 }
    }

    /// g = dy ⊙ act'(output): dy where the saved forward output is > 0, alpha·dy elsewhere (dy for identity).
    public static func masked(_ dy: [Double], by output: [Double]?, _ activation: Activation) -> [Double] {
        guard case let .leakyRelu(alpha) = activation else { return dy }
        guard let output else { preconditionFailure("a masked convolution gradient needs the saved output") }
        return zip(dy, output).map { $1 > 0 ? $0 : Double(alpha) * $0 }
    }

    /// db[c] = Σ over pixels of g[p, c] for g [pixels, channels].
    public static func biasGradient(_ g: [Double], channels: Int) -> [Double] {
        var db = [Double](repeating: 0, count: channels)
        if channels == 0 { return db }
        for (e, v) in g.enumerated() { db[e % channels] += v }
        return db
    }

    /// y[n, i, j, co] = bias[co] + Σ over (di, dj, ci) of x[n, i + di − pad, j + dj − pad, ci]·w[di, dj, ci, co],
    /// with x zero outside the image.
    public static func conv2d(_ x: [Double], _ w: [Double], bias: [Double]?, shape s: ConvShape) -> [Double] {
        var y = [Double](repeating: 0, count: s.batch * s.height * s.width * s.outChannels)
        for n in 0..<s.batch {
            for i in 0..<s.height {
                for j in 0..<s.width {
                    for co in 0..<s.outChannels {
                        var acc = bias?[co] ?? 0
                        for di in 0..<s.kernel {
                            for dj in 0..<s.kernel {
                                let xi = i + di - s.pad, xj = j + dj - s.pad
                                guard xi >= 0, xi < s.height, xj >= 0, xj < s.width else { continue }
                                for ci in 0..<s.inChannels {
                                    acc += x[((n * s.height + xi) * s.width + xj) * s.inChannels + ci]
                                        * w[((di * s.kernel + dj) * s.inChannels + ci) * s.outChannels + co]
                                }
                            }
                        }
                        y[((n * s.height + i) * s.width + j) * s.outChannels + co] = acc
                    }
                }
            }
        }
        return y
    }

    /// dx[n, p, q, ci] = Σ over (di, dj, co) of dy[n, p − di + pad, q − dj + pad, co]·w[di, dj, ci, co]
    /// (the pixels of y that read x[n, p, q]).
    public static func conv2dBackwardInput(_ dy: [Double], _ w: [Double], shape s: ConvShape) -> [Double] {
        var dx = [Double](repeating: 0, count: s.batch * s.height * s.width * s.inChannels)
        for n in 0..<s.batch {
            for p in 0..<s.height {
                for q in 0..<s.width {
                    for ci in 0..<s.inChannels {
                        var acc = 0.0
                        for di in 0..<s.kernel {
                            for dj in 0..<s.kernel {
                                let yi = p - di + s.pad, yj = q - dj + s.pad
                                guard yi >= 0, yi < s.height, yj >= 0, yj < s.width else { continue }
                                for co in 0..<s.outChannels {
                                    acc += dy[((n * s.height + yi) * s.width + yj) * s.outChannels + co]
                                        * w[((di * s.kernel + dj) * s.inChannels + ci) * s.outChannels + co]
                                }
                            }
                        }
                        dx[((n * s.height + p) * s.width + q) * s.inChannels + ci] = acc
                    }
                }
            }
        }
        return dx
    }

    /// dw[di, dj, ci, co] = Σ over (n, i, j) of x[n, i + di − pad, j + dj − pad, ci]·dy[n, i, j, co].
    public static func conv2dBackwardFilter(_ x: [Double], _ dy: [Double], shape s: ConvShape) -> [Double] {
        var dw = [Double](repeating: 0, count: s.kernel * s.kernel * s.inChannels * s.outChannels)
        for di in 0..<s.kernel {
            for dj in 0..<s.kernel {
                for ci in 0..<s.inChannels {
                    for co in 0..<s.outChannels {
                        var acc = 0.0
                        for n in 0..<s.batch {
                            for i in 0..<s.height {
                                for j in 0..<s.width {
                                    let xi = i + di - s.pad, xj = j + dj - s.pad
                                    guard xi >= 0, xi < s.height, xj >= 0, xj < s.width else { continue }
                                    acc += x[((n * s.height + xi) * s.width + xj) * s.inChannels + ci]
                                        * dy[((n * s.height + i) * s.width + j) * s.outChannels + co]
                                }
                            }
                        }
                        dw[((di * s.kernel + dj) * s.inChannels + ci) * s.outChannels + co] = acc
                    }
                }
            }
        }
        return dw
    }

    // MARK: Pooling and upsampling (NHWC)

    /// `shape` describes x ([n, h, w, c], h and w even); the result is [n, h/2, w/2, c].
    public static func avgPool2x2(_ x: [Double], shape s: ImageShape) -> [Double] {
        let h = s.height / 2, w = s.width / 2
        var y = [Double](repeating: 0, count: s.batch * h * w * s.channels)
        for n in 0..<s.batch {
            for i in 0..<h {
                for j in 0..<w {
                    for c in 0..<s.channels {
                        var acc = 0.0
                        for (di, dj) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                            acc += x[((n * s.height + 2 * i + di) * s.width + 2 * j + dj) * s.channels + c]
                        }
                        y[((n * h + i) * w + j) * s.channels + c] = acc / 4
                    }
                }
            }
        }
        return y
    }

    /// `shape` describes dx ([n, h, w, c]); dy is [n, h/2, w/2, c].
    public static func avgPool2x2Backward(_ dy: [Double], shape s: ImageShape) -> [Double] {
        let h = s.height / 2, w = s.width / 2
        var dx = [Double](repeating: 0, count: s.count)
        for n in 0..<s.batch {
            for i in 0..<s.height {
                for j in 0..<s.width {
                    for c in 0..<s.channels {
                        dx[((n * s.height + i) * s.width + j) * s.channels + c] =
                            dy[((n * h + i / 2) * w + j / 2) * s.channels + c] / 4
                    }
                }
            }
        }
        return dx
    }

    /// `shape` describes x ([n, h, w, c]); the result is [n, 2h, 2w, c].
    public static func upsample2x(_ x: [Double], shape s: ImageShape) -> [Double] {
        let h = 2 * s.height, w = 2 * s.width
        var y = [Double](repeating: 0, count: 4 * s.count)
        for n in 0..<s.batch {
            for i in 0..<h {
                for j in 0..<w {
                    for c in 0..<s.channels {
                        y[((n * h + i) * w + j) * s.channels + c] =
                            x[((n * s.height + i / 2) * s.width + j / 2) * s.channels + c]
                    }
                }
            }
        }
        return y
    }

    /// `shape` describes dx ([n, h, w, c]); dy is [n, 2h, 2w, c].
    public static func upsample2xBackward(_ dy: [Double], shape s: ImageShape) -> [Double] {
        let h = 2 * s.height, w = 2 * s.width
        var dx = [Double](repeating: 0, count: s.count)
        for n in 0..<s.batch {
            for i in 0..<s.height {
                for j in 0..<s.width {
                    for c in 0..<s.channels {
                        var acc = 0.0
                        for (di, dj) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                            acc += dy[((n * h + 2 * i + di) * w + 2 * j + dj) * s.channels + c]
                        }
                        dx[((n * s.height + i) * s.width + j) * s.channels + c] = acc
                    }
                }
            }
        }
        return dx
    }

    // MARK: Data movement

    /// dst[o, dstStart + i, :] = src[o, srcStart + i, :] for i < length; the rest of dst unchanged.
    public static func copyAxisRange(_ src: [Double], into dst: [Double], outer: Int, srcAxis: Int, dstAxis: Int,
                                     inner: Int, srcStart: Int, dstStart: Int, length: Int) -> [Double] {
        var out = dst
        for o in 0..<outer {
            for i in 0..<length {
                for k in 0..<inner {
                    out[(o * dstAxis + dstStart + i) * inner + k] = src[(o * srcAxis + srcStart + i) * inner + k]
                }
            }
        }
        return out
    }

    /// out[o, i, :] = x[o, axis − 1 − i, :].
    public static func reverseAxis(_ x: [Double], outer: Int, axis: Int, inner: Int) -> [Double] {
        var out = [Double](repeating: 0, count: outer * axis * inner)
        for o in 0..<outer {
            for i in 0..<axis {
                for k in 0..<inner {
                    out[(o * axis + i) * inner + k] = x[(o * axis + axis - 1 - i) * inner + k]
                }
            }
        }
        return out
    }

    /// out[r, :] = table[index[r], :].
    public static func gatherRows(_ table: [Double], index: [Double], rows: Int, tableRows: Int,
                                  columns: Int) -> [Double] {
        var out = [Double](repeating: 0, count: rows * columns)
        for r in 0..<rows {
            let t = Int(index[r])
            precondition(t >= 0 && t < tableRows, "gatherRows reference: index \(t) outside 0..<\(tableRows)")
            for c in 0..<columns { out[r * columns + c] = table[t * columns + c] }
        }
        return out
    }

    /// out[r, c] = c == index[r] ? 1 : 0.
    public static func oneHot(_ index: [Double], rows: Int, depth: Int) -> [Double] {
        var out = [Double](repeating: 0, count: rows * depth)
        for r in 0..<rows {
            for c in 0..<depth where Double(c) == index[r] { out[r * depth + c] = 1 }
        }
        return out
    }

    // MARK: Losses

    /// log Σ_c exp(logits[r, c]) for one row, computed stably.
    private static func logSumExp(_ logits: [Double], row r: Int, classes: Int) -> Double {
        let row = logits[(r * classes)..<((r + 1) * classes)]
        let top = row.max() ?? 0
        return top + Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - top) })
    }

    /// loss[r] = −Σ_c labels[r, c]·log softmax(logits[r, :])_c.
    public static func softmaxCrossEntropy(_ logits: [Double], labels: [Double], rows: Int,
                                           classes: Int) -> [Double] {
        (0..<rows).map { r in
            let lse = logSumExp(logits, row: r, classes: classes)
            var loss = 0.0
            for c in 0..<classes { loss -= labels[r * classes + c] * (logits[r * classes + c] - lse) }
            return loss
        }
    }

    /// dlogits[r, c] = dloss[r]·(softmax(logits[r, :])_c − labels[r, c]).
    public static func softmaxCrossEntropyBackward(_ logits: [Double], labels: [Double], dloss: [Double],
                                                   rows: Int, classes: Int) -> [Double] {
        var out = [Double](repeating: 0, count: rows * classes)
        for r in 0..<rows {
            let lse = logSumExp(logits, row: r, classes: classes)
            for c in 0..<classes {
                let p = Foundation.exp(logits[r * classes + c] - lse)
                out[r * classes + c] = dloss[r] * (p - labels[r * classes + c])
            }
        }
        return out
    }

    // MARK: Random

    /// The counter hash of `RandomBits`, restated from its documentation (SplitMix64 finaliser of
    /// seed + counter·golden ratio, top 32 bits), so the devices are checked against the spec, not the code.
    public static func randomHash(seed: UInt64, counter: UInt64) -> UInt32 {
        var z = seed &+ counter &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return UInt32(z >> 32)
    }

    /// Uniform in [0, 1): the top 24 bits of the hash times 2^−24 (exact in float32).
    public static func randomUniform(seed: UInt64, counter: UInt64) -> Double {
        Double(randomHash(seed: seed, counter: counter) >> 8) / 16_777_216
    }

    /// Element i of a random draw at `offset` depends on (seed, offset + i) only:
    /// uniform = u(offset + i); normal = Box–Muller on u(2(offset + i)) + 2^−24 and u(2(offset + i) + 1);
    /// dropout(keep) = u(offset + i) < keep ? 1/keep : 0.
    public static func random(_ distribution: RandomDistribution, count: Int, seed: UInt64,
                              offset: UInt64) -> [Double] {
        (0..<count).map { i in
            let index = offset &+ UInt64(i)
            switch distribution {
            case .uniform:
                return randomUniform(seed: seed, counter: index)
            case .normal:
                let u1 = randomUniform(seed: seed, counter: 2 &* index) + 1.0 / 16_777_216
                let u2 = randomUniform(seed: seed, counter: 2 &* index &+ 1)
                return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
            case let .dropout(keep):
                return randomUniform(seed: seed, counter: index) < Double(keep) ? 1 / Double(keep) : 0
            }
        }
    }

    // MARK: Optimiser

    /// One TF1 Adam step: m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; p −= lrT·m/(√v + ε).
    public static func adam(param: [Double], grad: [Double], m: [Double], v: [Double],
                            hyper h: AdamStep) -> (param: [Double], m: [Double], v: [Double]) {
        let b1 = Double(h.beta1), b2 = Double(h.beta2), lr = Double(h.learningRateT), eps = Double(h.epsilon)
        var p = param, m = m, v = v
        for i in 0..<p.count {
            m[i] = b1 * m[i] + (1 - b1) * grad[i]
            v[i] = b2 * v[i] + (1 - b2) * grad[i] * grad[i]
            p[i] -= lr * m[i] / (v[i].squareRoot() + eps)
        }
        return (p, m, v)
    }

    // MARK: Index helpers

    /// Row-major element strides of a dense `shape`, with 0 along its size-1 dimensions (so indexing it with the
    /// multi-index of a larger, broadcast shape repeats it there).
    public static func repeatStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 0, count: shape.count)
        var step = 1
        for d in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[d] = shape[d] == 1 ? 0 : step
            step *= shape[d]
        }
        return strides
    }

    /// Advances a row-major multi-index by one (wrapping to zero after the last element).
    public static func increment(_ index: inout [Int], shape: [Int]) {
        var d = shape.count - 1
        while d >= 0 {
            index[d] += 1
            if index[d] < shape[d] { return }
            index[d] = 0
            d -= 1
        }
    }
}
