// Elementwise tensor operations and their gradients. Broadcasting follows NumPy; the gradient of a
// broadcast input is summed back to its shape in one place (`sumToShape`).

extension Tensor {
    func unary(_ f: UnaryFunction, alpha: Float = 0, beta: Float = 0) throws -> Tensor {
        let out = try Tensor.empty(shape, on: device)
        try device.run(.unary(f, x: buffer, out: out.buffer, alpha: alpha, beta: beta))
        return out
    }

    func binary(_ f: BinaryFunction, _ other: Tensor, alpha: Float = 0) throws -> Tensor {
        guard device === other.device else {
            throw DeviceError.invalidArgument("\(f.rawValue): operands live on different devices (\(device.id), \(other.device.id))")
        }
        guard let layout = BroadcastLayout.make(shape, other.shape) else {
            throw DeviceError.invalidArgument("\(f.rawValue): shapes \(shape) and \(other.shape) do not broadcast")
        }
        let outShape = broadcastShape(shape, other.shape)
        let out = try Tensor.empty(outShape, on: device)
        try device.run(.binary(f, a: buffer, b: other.buffer, out: out.buffer, layout: layout, alpha: alpha))
        return out
    }

    /// Sums a gradient of a broadcast result back to `target` (the shape of the input that was broadcast).
    func sumToShape(_ target: [Int]) throws -> Tensor {
        if shape == target { return self }
        let lead = shape.count - target.count
        let aligned = Array(repeating: 1, count: lead) + target
        let reduced = zip(shape, aligned).map { $0 != $1 }
        return try reduceSum(reduced: reduced).reshaped(target)
    }

    /// `sumToShape`, written into `sink` when there is one to overwrite (an added contribution is left to
    /// the caller).
    func sumToShape(_ target: [Int], into sink: GradientSink?) throws -> Tensor {
        guard let sink, !sink.accumulate, shape != target else { return try sumToShape(target) }
        let lead = shape.count - target.count
        let aligned = Array(repeating: 1, count: lead) + target
        let reduced = zip(shape, aligned).map { $0 != $1 }
        try device.run(.reduceSum(x: buffer, out: sink.tensor.buffer, layout: ReduceLayout(shape: shape, reduced: reduced)))
        return sink.tensor
    }

    /// y = alpha·x + beta
    public func affine(scale alpha: Float, shift beta: Float) throws -> Tensor {
        let x = self
        return Tensor.result(try unary(.affine, alpha: alpha, beta: beta), "affine", [x]) { g, needed in
            [try g.unary(.affine, alpha: alpha, beta: 0)]
        }
    }

    public func exp() throws -> Tensor {
        let y = try unary(.exp)
        let yc = y
        return Tensor.result(y, "exp", [self]) { g, needed in [try g * yc] }
    }

    public func log() throws -> Tensor {
        let x = detached()
        return Tensor.result(try unary(.log), "log", [self]) { g, needed in [try g / x] }
    }

    public func sqrt() throws -> Tensor {
        let y = try unary(.sqrt)
        let yc = y
        return Tensor.result(y, "sqrt", [self]) { g, needed in [try g * yc.unary(.reciprocal, alpha: 0.5)] }
    }

    public func square() throws -> Tensor {
        let x = detached()
        return Tensor.result(try unary(.square), "square", [self]) { g, needed in [try g * x.unary(.affine, alpha: 2)] }
    }

    public func abs() throws -> Tensor {
        let x = detached()
        return Tensor.result(try unary(.abs), "abs", [self]) { g, needed in [try g * x.unary(.sign)] }
    }

    /// alpha / x
    public func reciprocal(scale alpha: Float = 1) throws -> Tensor {
        let x = detached()
        return Tensor.result(try unary(.reciprocal, alpha: alpha), "reciprocal", [self]) { g, needed in
            [try g * x.unary(.square).unary(.reciprocal, alpha: -alpha)]
        }
    }

    public func sigmoid() throws -> Tensor {
        let y = try unary(.sigmoid)
        let yc = y
        return Tensor.result(y, "sigmoid", [self]) { g, needed in
            [try g * yc * yc.unary(.affine, alpha: -1, beta: 1)]
        }
    }

    /// x > 0 ? x : slope·x (the reference's leaky ReLU has slope 0.2).
    public func leakyRelu(slope: Float = 0.2) throws -> Tensor {
        let x = detached()
        return Tensor.result(try unary(.leakyRelu, alpha: slope), "leaky_relu", [self]) { g, needed in
            [try x.binary(.leakyReluBackward, g, alpha: slope)]
        }
    }

    public func relu() throws -> Tensor { try leakyRelu(slope: 0) }

    /// Elementwise maximum; where equal, the gradient goes to `other`.
    public func maximum(_ other: Tensor) throws -> Tensor {
        let a = detached(), b = other.detached()
        return Tensor.result(try binary(.maximum, other), "maximum", [self, other]) { g, needed in
            let ga = try g * a.binary(.greater, b)
            return [needed[0] ? try ga.sumToShape(a.shape) : nil, needed[1] ? try (g - ga).sumToShape(b.shape) : nil]
        }
    }

    /// 1 where self > other, else 0. Not differentiable (no gradient flows).
    public func greater(_ other: Tensor) throws -> Tensor { try detached().binary(.greater, other.detached()) }

    /// Elementwise sigmoid cross-entropy of logits `self` against `labels` (TF's
    /// `sigmoid_cross_entropy_with_logits`).
    public func sigmoidCrossEntropy(labels: Tensor) throws -> Tensor {
        let x = detached(), z = labels.detached()
        return Tensor.result(try binary(.sigmoidCrossEntropy, labels), "sigmoid_xent", [self, labels]) { g, needed in
            [needed[0] ? try (g * (x.unary(.sigmoid) - z)).sumToShape(x.shape) : nil,
             needed[1] ? try (g * x.unary(.affine, alpha: -1)).sumToShape(z.shape) : nil]
        }
    }

    /// Inverted dropout: keeps each element with probability `keep` and scales it by 1/keep.
    public func dropout(keep: Float, seed: UInt64, offset: UInt64) throws -> Tensor {
        let mask = try Tensor.random(shape, .dropout(keep: keep), seed: seed, offset: offset, on: device)
        return try self * mask
    }
}

func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int] {
    let rank = max(a.count, b.count)
    let pa = Array(repeating: 1, count: rank - a.count) + a
    let pb = Array(repeating: 1, count: rank - b.count) + b
    return zip(pa, pb).map { max($0, $1) }
}

// MARK: operators

public func + (a: Tensor, b: Tensor) throws -> Tensor {
    let sa = a.shape, sb = b.shape
    return Tensor.result(try a.binary(.add, b), "add", [a, b], backward: { g, needed in
        [needed[0] ? try g.sumToShape(sa) : nil, needed[1] ? try g.sumToShape(sb) : nil]
    }, backwardInto: { g, needed, sinks in
        // A bias: its gradient is summed over the broadcast axes straight into its gradient buffer.
        [needed[0] ? try g.sumToShape(sa, into: sinks[0]) : nil, needed[1] ? try g.sumToShape(sb, into: sinks[1]) : nil]
    })
}

public func - (a: Tensor, b: Tensor) throws -> Tensor {
    let sa = a.shape, sb = b.shape
    return Tensor.result(try a.binary(.sub, b), "sub", [a, b]) { g, needed in
        [needed[0] ? try g.sumToShape(sa) : nil, needed[1] ? try g.unary(.affine, alpha: -1).sumToShape(sb) : nil]
    }
}

public func * (a: Tensor, b: Tensor) throws -> Tensor {
    let ac = a.detached(), bc = b.detached()
    return Tensor.result(try a.binary(.mul, b), "mul", [a, b]) { g, needed in
        [needed[0] ? try (g * bc).sumToShape(ac.shape) : nil,
         needed[1] ? try (g * ac).sumToShape(bc.shape) : nil]
    }
}

public func / (a: Tensor, b: Tensor) throws -> Tensor {
    let ac = a.detached(), bc = b.detached()
    return Tensor.result(try a.binary(.div, b), "div", [a, b]) { g, needed in
        let ga = try g / bc
        return [needed[0] ? try ga.sumToShape(ac.shape) : nil,
                needed[1] ? try (ga * ac / bc).unary(.affine, alpha: -1).sumToShape(bc.shape) : nil]
    }
}

public prefix func - (x: Tensor) throws -> Tensor { try x.affine(scale: -1, shift: 0) }
public func + (x: Tensor, s: Float) throws -> Tensor { try x.affine(scale: 1, shift: s) }
public func + (s: Float, x: Tensor) throws -> Tensor { try x.affine(scale: 1, shift: s) }
public func - (x: Tensor, s: Float) throws -> Tensor { try x.affine(scale: 1, shift: -s) }
public func - (s: Float, x: Tensor) throws -> Tensor { try x.affine(scale: -1, shift: s) }
public func * (x: Tensor, s: Float) throws -> Tensor { try x.affine(scale: s, shift: 0) }
public func * (s: Float, x: Tensor) throws -> Tensor { try x.affine(scale: s, shift: 0) }
public func / (x: Tensor, s: Float) throws -> Tensor { try x.affine(scale: 1 / s, shift: 0) }
public func / (s: Float, x: Tensor) throws -> Tensor { try x.reciprocal(scale: s) }
