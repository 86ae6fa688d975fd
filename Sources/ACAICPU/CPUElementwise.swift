import ACAIDevice
import Foundation

// Each function is a tiny kernel type so the generic loops below are specialised and vectorised per
// function, instead of calling a closure per element.

protocol UnaryKernel {
    static func apply(_ x: Float, _ alpha: Float, _ beta: Float) -> Float
}

protocol BinaryKernel {
    static func apply(_ a: Float, _ b: Float, _ alpha: Float) -> Float
}

private enum AffineK: UnaryKernel {
    @inline(__always) static func apply(_ x: Float, _ alpha: Float, _ beta: Float) -> Float { alpha * x + beta }
}
private enum ReciprocalK: UnaryKernel {
    @inline(__always) static func apply(_ x: Float, _ alpha: Float, _ beta: Float) -> Float { alpha / x }
}
private enum ExpK: UnaryKernel {
    @inline(__always) static func apply(_ x: Float, _ alpha: Float, _ beta: Float) -> Float { expf(x) }
}
private enum LogK: UnaryKernel {
    @inline(__always) static func apply(_ x: Float, _ alpha: Float, _ beta: Float) -> Float { logf(x) }
}
private enum SqrtK: UnaryKernel {
    @inline(__always) static func apply(_ x: Float, _ alpha: Float, _ beta: Float) -> Float { x.squareRoot() }
}
private enum SquareK: UnaryKernel {
    @inline(__always) static func apply(_ x: Float, _ alpha: Float, _ beta: Float) -> Float { x * x }
}
private enum AbsK: UnaryKernel {
    @inline(__always) static func apply(_ x: Float, _ alpha: Float, _ beta: Float) -> Float { Swift.abs(x) }
}
private enum SignK: UnaryKernel {
    @inline(__always) static func apply(_ x: Float, _ alpha: Float, _ beta: Float) -> Float {
        x > 0 ? 1 : (x < 0 ? -1 : 0)
    }
}
private enum LeakyReluK: UnaryKernel {
    @inline(__always) static func apply(_ x: Float, _ alpha: Float, _ beta: Float) -> Float { x > 0 ? x : alpha * x }
}
private enum SigmoidK: UnaryKernel {
    @inline(__always) static func apply(_ x: Float, _ alpha: Float, _ beta: Float) -> Float { 1 / (1 + expf(-x)) }
}

private enum AddK: BinaryKernel {
    @inline(__always) static func apply(_ a: Float, _ b: Float, _ alpha: Float) -> Float { a + b }
}
private enum SubK: BinaryKernel {
    @inline(__always) static func apply(_ a: Float, _ b: Float, _ alpha: Float) -> Float { a - b }
}
private enum MulK: BinaryKernel {
    @inline(__always) static func apply(_ a: Float, _ b: Float, _ alpha: Float) -> Float { a * b }
}
private enum DivK: BinaryKernel {
    @inline(__always) static func apply(_ a: Float, _ b: Float, _ alpha: Float) -> Float { a / b }
}
private enum LeakyReluBackwardK: BinaryKernel {
    @inline(__always) static func apply(_ a: Float, _ b: Float, _ alpha: Float) -> Float { a > 0 ? b : alpha * b }
}
private enum SigmoidCrossEntropyK: BinaryKernel {
    // max(a, 0) − a·b + log(1 + e^−|a|): never overflows, and log1p keeps precision for large |a|.
    @inline(__always) static func apply(_ a: Float, _ b: Float, _ alpha: Float) -> Float {
        Swift.max(a, 0) - a * b + log1pf(expf(-Swift.abs(a)))
    }
}
private enum MaximumK: BinaryKernel {
    // IEEE maximum (a NaN loses to a number), like OpenCL's fmax.
    @inline(__always) static func apply(_ a: Float, _ b: Float, _ alpha: Float) -> Float { Float.maximum(a, b) }
}
private enum GreaterK: BinaryKernel {
    @inline(__always) static func apply(_ a: Float, _ b: Float, _ alpha: Float) -> Float { a > b ? 1 : 0 }
}

enum CPUElementwise {
    static func fill(_ out: UnsafeMutablePointer<Float>, count: Int, value: Float, _ parallel: Parallel) {
        parallel.chunks(count) { r in (out + r.lowerBound).update(repeating: value, count: r.count) }
    }

    // MARK: Unary

    static func unary(_ f: UnaryFunction, _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                      count: Int, alpha: Float, beta: Float, _ parallel: Parallel) {
        switch f {
        case .affine: map(AffineK.self, x, out, count, alpha, beta, parallel)
        case .reciprocal: map(ReciprocalK.self, x, out, count, alpha, beta, parallel)
        case .exp: map(ExpK.self, x, out, count, alpha, beta, parallel)
        case .log: map(LogK.self, x, out, count, alpha, beta, parallel)
        case .sqrt: map(SqrtK.self, x, out, count, alpha, beta, parallel)
        case .square: map(SquareK.self, x, out, count, alpha, beta, parallel)
        case .abs: map(AbsK.self, x, out, count, alpha, beta, parallel)
        case .sign: map(SignK.self, x, out, count, alpha, beta, parallel)
        case .leakyRelu: map(LeakyReluK.self, x, out, count, alpha, beta, parallel)
        case .sigmoid: map(SigmoidK.self, x, out, count, alpha, beta, parallel)
        }
    }

    private static func map<K: UnaryKernel>(_: K.Type, _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                                            _ count: Int, _ alpha: Float, _ beta: Float, _ parallel: Parallel) {
        parallel.chunks(count) { r in
            for i in r { out[i] = K.apply(x[i], alpha, beta) }
        }
    }

    // MARK: Binary

    static func binary(_ f: BinaryFunction, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                       _ out: UnsafeMutablePointer<Float>, layout: BroadcastLayout, alpha: Float,
                       _ parallel: Parallel) {
        switch f {
        case .add: zipWith(AddK.self, a, b, out, layout, alpha, parallel)
        case .sub: zipWith(SubK.self, a, b, out, layout, alpha, parallel)
        case .mul: zipWith(MulK.self, a, b, out, layout, alpha, parallel)
        case .div: zipWith(DivK.self, a, b, out, layout, alpha, parallel)
        case .leakyReluBackward: zipWith(LeakyReluBackwardK.self, a, b, out, layout, alpha, parallel)
        case .sigmoidCrossEntropy: zipWith(SigmoidCrossEntropyK.self, a, b, out, layout, alpha, parallel)
        case .maximum: zipWith(MaximumK.self, a, b, out, layout, alpha, parallel)
        case .greater: zipWith(GreaterK.self, a, b, out, layout, alpha, parallel)
        }
    }

    private static func zipWith<K: BinaryKernel>(_ k: K.Type, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                                                 _ out: UnsafeMutablePointer<Float>, _ layout: BroadcastLayout,
                                                 _ alpha: Float, _ parallel: Parallel) {
        let count = layout.count
        if layout.isElementwise {
            parallel.chunks(count) { r in
                for i in r { out[i] = K.apply(a[i], b[i], alpha) }
            }
            return
        }
        let shape = layout.shape, aStrides = layout.aStrides, bStrides = layout.bStrides
        let rank = shape.count
        let n = shape[rank - 1], sa = aStrides[rank - 1], sb = bStrides[rank - 1]
        if rank == 2 {
            // [rows, n]: the bias-add / per-row-scale shapes, without the general odometer.
            let rowA = aStrides[0], rowB = bStrides[0]
            parallel.chunks(shape[0], serialLimit: Swift.max(1, Parallel.serialLimit / Swift.max(n, 1)), align: 1) { rows in
                for r in rows { run(K.self, a + r * rowA, b + r * rowB, out + r * n, n, sa, sb, alpha) }
            }
            return
        }
        parallel.chunks(count) { range in
            // Odometer over the outer dimensions; the innermost one is a strided run.
            var index = [Int](repeating: 0, count: rank)
            var rest = range.lowerBound
            for d in stride(from: rank - 1, through: 0, by: -1) {
                index[d] = rest % shape[d]
                rest /= shape[d]
            }
            var oa = 0, ob = 0
            for d in 0..<rank {
                oa += index[d] * aStrides[d]
                ob += index[d] * bStrides[d]
            }
            var position = range.lowerBound
            while position < range.upperBound {
                let j0 = index[rank - 1]
                let length = Swift.min(n - j0, range.upperBound - position)
                run(K.self, a + oa, b + ob, out + position, length, sa, sb, alpha)
                position += length
                if position >= range.upperBound { break }
                oa -= j0 * sa
                ob -= j0 * sb
                index[rank - 1] = 0
                var d = rank - 2
                while d >= 0 {
                    index[d] += 1
                    oa += aStrides[d]
                    ob += bStrides[d]
                    if index[d] < shape[d] { break }
                    oa -= shape[d] * aStrides[d]
                    ob -= shape[d] * bStrides[d]
                    index[d] = 0
                    d -= 1
                }
            }
        }
    }

    /// out[i] = f(a[i·sa], b[i·sb]) for i in 0..<n, with the common stride pairs as vectorisable loops.
    @inline(__always)
    private static func run<K: BinaryKernel>(_: K.Type, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                                             _ out: UnsafeMutablePointer<Float>, _ n: Int, _ sa: Int, _ sb: Int,
                                             _ alpha: Float) {
        switch (sa, sb) {
        case (1, 1):
            for i in 0..<n { out[i] = K.apply(a[i], b[i], alpha) }
        case (1, 0):
            let bv = b[0]
            for i in 0..<n { out[i] = K.apply(a[i], bv, alpha) }
        case (0, 1):
            let av = a[0]
            for i in 0..<n { out[i] = K.apply(av, b[i], alpha) }
        default:
            for i in 0..<n { out[i] = K.apply(a[i * sa], b[i * sb], alpha) }
        }
    }

    // MARK: Random and Adam

    static func random(_ distribution: RandomDistribution, _ out: UnsafeMutablePointer<Float>, count: Int,
                       seed: UInt64, offset: UInt64, _ parallel: Parallel) {
        switch distribution {
        case .uniform:
            parallel.chunks(count, serialLimit: 8192) { r in
                for i in r { out[i] = RandomBits.uniform(seed: seed, counter: offset &+ UInt64(i)) }
            }
        case .normal:
            parallel.chunks(count, serialLimit: 4096) { r in
                for i in r { out[i] = RandomBits.normal(seed: seed, index: offset &+ UInt64(i)) }
            }
        case let .dropout(keep):
            let scale = 1 / keep
            parallel.chunks(count, serialLimit: 8192) { r in
                for i in r {
                    out[i] = RandomBits.uniform(seed: seed, counter: offset &+ UInt64(i)) < keep ? scale : 0
                }
            }
        }
    }

    static func adam(param: UnsafeMutablePointer<Float>, grad: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
                     v: UnsafeMutablePointer<Float>, count: Int, _ h: AdamStep, _ parallel: Parallel) {
        let b1 = h.beta1, b2 = h.beta2, c1 = 1 - h.beta1, c2 = 1 - h.beta2
        let lr = h.learningRateT, eps = h.epsilon
        parallel.chunks(count) { r in
            // Written with explicit vectors: the four pointers may alias as far as the compiler knows,
            // so it would not vectorise the square root and division on its own.
            var i = r.lowerBound
            while i + 16 <= r.upperBound {
                let g = load(grad + i)
                let mi = b1 * load(m + i) + c1 * g
                let vi = b2 * load(v + i) + c2 * (g * g)
                store(mi, m + i, 16)
                store(vi, v + i, 16)
                store(load(param + i) - lr * mi / (vi.squareRoot() + eps), param + i, 16)
                i += 16
            }
            while i < r.upperBound {
                let g = grad[i]
                let mi = b1 * m[i] + c1 * g
                let vi = b2 * v[i] + c2 * (g * g)
                m[i] = mi
                v[i] = vi
                param[i] -= lr * mi / (vi.squareRoot() + eps)
                i += 1
            }
        }
    }

    // MARK: Data movement

    static func copyAxisRange(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, outer: Int,
                              srcAxis: Int, dstAxis: Int, inner: Int, srcStart: Int, dstStart: Int, length: Int,
                              _ parallel: Parallel) {
        let run = length * inner
        if run == 0 || outer == 0 { return }
        let copy = { (o: Int) in
            // memmove: src and dst may be the same buffer.
            _ = memmove(dst + (o * dstAxis + dstStart) * inner, src + (o * srcAxis + srcStart) * inner,
                        run * MemoryLayout<Float>.stride)
        }
        if UnsafePointer(dst) == src {
            // In place: rows of different `o` may overlap, so keep the order a single memmove would have.
            if dstStart > srcStart {
                for o in stride(from: outer - 1, through: 0, by: -1) { copy(o) }
            } else {
                for o in 0..<outer { copy(o) }
            }
            return
        }
        parallel.chunks(outer, serialLimit: Swift.max(1, Parallel.serialLimit / run), align: 1) { r in
            for o in r { copy(o) }
        }
    }

    static func reverseAxis(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, outer: Int, axis: Int,
                            inner: Int, _ parallel: Parallel) {
        if outer * axis * inner == 0 { return }
        if UnsafePointer(out) == x {
            // In place: swap mirrored rows.
            parallel.chunks(outer, serialLimit: Swift.max(1, Parallel.serialLimit / (axis * inner)), align: 1) { r in
                for o in r {
                    let base = out + o * axis * inner
                    for i in 0..<(axis / 2) {
                        let p = base + i * inner, q = base + (axis - 1 - i) * inner
                        for c in 0..<inner { let t = p[c]; p[c] = q[c]; q[c] = t }
                    }
                }
            }
            return
        }
        let rows = outer * axis
        parallel.chunks(rows, serialLimit: Swift.max(1, Parallel.serialLimit / inner), align: 1) { r in
            for row in r {
                let o = row / axis, i = row % axis
                (out + row * inner).update(from: x + (o * axis + axis - 1 - i) * inner, count: inner)
            }
        }
    }

    /// Reads an index stored as a float, or explains why it is not a valid one.
    private static func checkedIndex(_ value: Float, row: Int, limit: Int, op: String) throws -> Int {
        guard value.isFinite, value.rounded() == value, value >= 0, value < Float(limit) else {
            throw DeviceError.invalidArgument(
                "\(op): row \(row) has index \(value), expected an integer in 0..<\(limit)")
        }
        return Int(value)
    }

    static func gatherRows(_ table: UnsafePointer<Float>, _ index: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                           rows: Int, tableRows: Int, columns: Int, _ parallel: Parallel) throws {
        // Check every index before writing anything, so a bad one leaves `out` untouched.
        for r in 0..<rows { _ = try checkedIndex(index[r], row: r, limit: tableRows, op: "gather_rows") }
        if columns == 0 { return }
        parallel.chunks(rows, serialLimit: Swift.max(1, Parallel.serialLimit / columns), align: 1) { range in
            for r in range {
                (out + r * columns).update(from: table + Int(index[r]) * columns, count: columns)
            }
        }
    }

    static func oneHot(_ index: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, rows: Int, depth: Int,
                       _ parallel: Parallel) throws {
        for r in 0..<rows { _ = try checkedIndex(index[r], row: r, limit: depth, op: "one_hot") }
        parallel.chunks(rows, serialLimit: Swift.max(1, Parallel.serialLimit / Swift.max(depth, 1)), align: 1) { range in
            for r in range {
                let row = out + r * depth
                row.update(repeating: 0, count: depth)
                row[Int(index[r])] = 1
            }
        }
    }
}
