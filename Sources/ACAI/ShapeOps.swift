// Shape, reduction, indexing and loss operations with their gradients.

extension Tensor {
    /// Same values, new shape (free: buffers are dense).
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        var resolved = newShape
        if let i = newShape.firstIndex(of: -1) {
            let known = newShape.enumerated().filter { $0.offset != i }.reduce(1) { $0 * $1.element }
            guard known > 0, count % known == 0 else {
                throw DeviceError.invalidArgument("cannot reshape \(shape) to \(newShape)")
            }
            resolved[i] = count / known
        }
        guard resolved.reduce(1, *) == count else {
            throw DeviceError.invalidArgument("cannot reshape \(shape) (\(count) values) to \(newShape)")
        }
        let old = shape
        let out = Tensor(shape: resolved, buffer: buffer, device: device)
        return Tensor.result(out, "reshape", [self]) { g, needed in [try g.reshaped(old)] }
    }

    /// [n, ...] → [n, rest]
    public func flattened() throws -> Tensor { try reshaped([shape.first ?? 1, -1]) }

    // MARK: reductions

    /// Sum over the axes flagged in `reduced`, keeping them with size 1.
    func reduceSum(reduced: [Bool]) throws -> Tensor {
        let outShape = zip(shape, reduced).map { $1 ? 1 : $0 }
        let out = try Tensor.empty(outShape, on: device)
        try device.run(.reduceSum(x: buffer, out: out.buffer, layout: ReduceLayout(shape: shape, reduced: reduced)))
        let inShape = shape
        return Tensor.result(out, "sum", [self]) { g, needed in [try g.broadcast(to: inShape)] }
    }

    /// Repeats values along size-1 axes to `target` (the gradient of a sum).
    public func broadcast(to target: [Int]) throws -> Tensor {
        if shape == target { return self }
        guard broadcastShape(target, shape) == target, let full = BroadcastLayout.make(target, shape) else {
            throw DeviceError.invalidArgument("cannot broadcast \(shape) to \(target)")
        }
        let zero = try Tensor.zeros([1], on: device)
        let out = try Tensor.empty(target, on: device)
        // out = 0 + self, with self broadcast over `target` (the zero is a single broadcast element).
        let zeroLayout = BroadcastLayout(shape: full.shape, aStrides: full.aStrides.map { _ in 0 }, bStrides: full.bStrides)
        try device.run(.binary(.add, a: zero.buffer, b: buffer, out: out.buffer, layout: zeroLayout, alpha: 0))
        let source = shape
        return Tensor.result(out, "broadcast", [self]) { g, needed in [try g.sumToShape(source)] }
    }

    /// Sum of all elements, shape [1].
    public func sum() throws -> Tensor { try reduceSum(reduced: shape.map { _ in true }).reshaped([1]) }

    /// Sum over `axes` (negative axes count from the end); `keepDims` keeps them with size 1.
    public func sum(axes: [Int], keepDims: Bool = false) throws -> Tensor {
        let flags = try axisFlags(axes)
        let s = try reduceSum(reduced: flags)
        return keepDims ? s : try s.reshaped(zip(shape, flags).filter { !$0.1 }.map(\.0).nonEmpty)
    }

    public func mean() throws -> Tensor { try sum() * (1 / Float(count)) }

    public func mean(axes: [Int], keepDims: Bool = false) throws -> Tensor {
        let flags = try axisFlags(axes)
        let n = zip(shape, flags).filter(\.1).reduce(1) { $0 * $1.0 }
        return try sum(axes: axes, keepDims: keepDims) * (1 / Float(n))
    }

    func axisFlags(_ axes: [Int]) throws -> [Bool] {
        var flags = Array(repeating: false, count: rank)
        for a in axes {
            let axis = a < 0 ? a + rank : a
            guard (0..<rank).contains(axis) else {
                throw DeviceError.invalidArgument("axis \(a) out of range for shape \(shape)")
            }
            flags[axis] = true
        }
        return flags
    }

    /// Index of the largest (or smallest) value along `axis`, as floats; no gradient.
    public func argmax(axis: Int) throws -> Tensor { try argReduce(axis: axis, findMax: true) }
    public func argmin(axis: Int) throws -> Tensor { try argReduce(axis: axis, findMax: false) }

    func argReduce(axis a: Int, findMax: Bool) throws -> Tensor {
        let axis = a < 0 ? a + rank : a
        guard (0..<rank).contains(axis) else { throw DeviceError.invalidArgument("axis \(a) out of range for shape \(shape)") }
        let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *)
        var outShape = shape
        outShape.remove(at: axis)
        let out = try Tensor.empty(outShape.nonEmpty, on: device)
        try device.run(.argReduce(x: buffer, out: out.buffer, outer: outer, axis: shape[axis], inner: inner,
                                  findMax: findMax))
        return out
    }

    // MARK: slicing, concatenation, reversal

    /// Elements `range` along `axis`.
    public func slice(_ range: Range<Int>, axis a: Int = 0) throws -> Tensor {
        let axis = a < 0 ? a + rank : a
        guard (0..<rank).contains(axis), range.lowerBound >= 0, range.upperBound <= shape[axis] else {
            throw DeviceError.invalidArgument("slice \(range) along axis \(a) out of range for shape \(shape)")
        }
        let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *)
        var outShape = shape
        outShape[axis] = range.count
        let out: Tensor
        let start = range.lowerBound * inner
        if outer == 1, buffer.parent == nil, !range.isEmpty, start % device.viewAlignment == 0 {
            // Rows of the outermost axis are contiguous: a view shares them (tensors are not written in place).
            out = Tensor(shape: outShape, buffer: try device.view(of: buffer, offset: start, count: range.count * inner),
                         device: device)
        } else {
            out = try Tensor.empty(outShape, on: device)
            try device.run(.copyAxisRange(src: buffer, dst: out.buffer, outer: outer, srcAxis: shape[axis],
                                          dstAxis: range.count, inner: inner, srcStart: range.lowerBound, dstStart: 0,
                                          length: range.count))
        }
        let full = shape, dev = device
        return Tensor.result(out, "slice", [self]) { g, needed in
            // Along axis 0 the rows outside the slice are the gradient's row support's outside: left unwritten.
            let dx = outer == 1 ? try Tensor.empty(full, on: dev) : try Tensor.zeros(full, on: dev)
            try dev.run(.copyAxisRange(src: g.buffer, dst: dx.buffer, outer: outer, srcAxis: range.count,
                                       dstAxis: full[axis], inner: inner, srcStart: 0, dstStart: range.lowerBound,
                                       length: range.count))
            return [outer == 1 ? dx.supported(on: range, zeroOutside: false) : dx]
        }
    }

    /// Concatenation along `axis`; all other dimensions must agree.
    public static func concat(_ parts: [Tensor], axis a: Int = 0) throws -> Tensor {
        guard let first = parts.first else { throw DeviceError.invalidArgument("concat of no tensors") }
        let axis = a < 0 ? a + first.rank : a
        for p in parts {
            var s1 = p.shape, s0 = first.shape
            guard p.rank == first.rank, (0..<first.rank).contains(axis), p.device === first.device else {
                throw DeviceError.invalidArgument("concat: shape \(p.shape) does not fit \(first.shape) along axis \(a)")
            }
            s1[axis] = 0; s0[axis] = 0
            guard s1 == s0 else { throw DeviceError.invalidArgument("concat: shape \(p.shape) does not fit \(first.shape) along axis \(a)") }
        }
        let total = parts.reduce(0) { $0 + $1.shape[axis] }
        var outShape = first.shape
        outShape[axis] = total
        let outer = first.shape[..<axis].reduce(1, *), inner = first.shape[(axis + 1)...].reduce(1, *)
        let out = try Tensor.empty(outShape, on: first.device)
        var start = 0
        var ranges: [Range<Int>] = []
        for p in parts {
            try first.device.run(.copyAxisRange(src: p.buffer, dst: out.buffer, outer: outer, srcAxis: p.shape[axis],
                                                dstAxis: total, inner: inner, srcStart: 0, dstStart: start,
                                                length: p.shape[axis]))
            ranges.append(start..<start + p.shape[axis])
            start += p.shape[axis]
        }
        return Tensor.result(out, "concat", parts, acceptsRowSupport: true) { g, needed in
            // Along axis 0 each part keeps the rows of the support that fall in it (slices share memory).
            guard axis == 0, let support = g.rowSupport else {
                let dense = try g.materialized()
                return try zip(ranges, needed).map { range, need in need ? try dense.slice(range, axis: axis) : nil }
            }
            return try zip(ranges, needed).map { range, need in
                guard need else { return nil }
                let lo = min(max(support.rows.lowerBound, range.lowerBound), range.upperBound)
                let hi = max(min(support.rows.upperBound, range.upperBound), lo)
                return try g.slice(range).supported(on: (lo - range.lowerBound)..<(hi - range.lowerBound),
                                                    zeroOutside: support.zeroOutside)
            }
        }
    }

    /// The order of elements along `axis` reversed (ACAI pairs a batch with its reverse).
    public func reversed(axis a: Int = 0) throws -> Tensor {
        let axis = a < 0 ? a + rank : a
        guard (0..<rank).contains(axis) else { throw DeviceError.invalidArgument("axis \(a) out of range for shape \(shape)") }
        let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *), n = shape[axis]
        let out = try Tensor.empty(shape, on: device)
        try device.run(.reverseAxis(x: buffer, out: out.buffer, outer: outer, axis: n, inner: inner))
        return Tensor.result(out, "reverse", [self]) { g, needed in [try g.reversed(axis: axis)] }
    }

    // MARK: indexing

    /// Rows of a [rows, columns] table picked by integral float `indices` ([n]); result [n, columns].
    /// The gradient with respect to the table is oneHot(indices)ᵀ·g.
    public func gatherRows(_ indices: Tensor) throws -> Tensor {
        guard rank == 2 else { throw DeviceError.invalidArgument("gatherRows needs a [rows, columns] table, got \(shape)") }
        let n = indices.count, rows = shape[0], columns = shape[1]
        let out = try Tensor.empty([n, columns], on: device)
        try device.run(.gatherRows(table: buffer, index: indices.buffer, out: out.buffer, rows: n, tableRows: rows,
                                   columns: columns))
        let idx = indices.detached()
        return Tensor.result(out, "gather", [self]) { g, needed in
            [try idx.oneHot(depth: rows).matmul(g, transposeA: true)]
        }
    }

    /// [n] integral floats → [n, depth] one-hot rows.
    public func oneHot(depth: Int) throws -> Tensor {
        let out = try Tensor.empty([count, depth], on: device)
        try device.run(.oneHot(index: buffer, out: out.buffer, rows: count, depth: depth))
        return out
    }

    // MARK: losses

    /// Per-row softmax cross-entropy of logits [rows, classes] against label distributions of the same
    /// shape; result [rows]. Labels are treated as constants (no gradient flows into them).
    public func softmaxCrossEntropy(labels: Tensor) throws -> Tensor {
        guard rank == 2, labels.shape == shape else {
            throw DeviceError.invalidArgument("softmaxCrossEntropy: logits \(shape) and labels \(labels.shape) must both be [rows, classes]")
        }
        let rows = shape[0], classes = shape[1]
        let out = try Tensor.empty([rows], on: device)
        try device.run(.softmaxCrossEntropy(logits: buffer, labels: labels.buffer, loss: out.buffer, rows: rows,
                                            classes: classes))
        let x = detached(), z = labels.detached(), dev = device
        return Tensor.result(out, "softmax_xent", [self]) { g, needed in
            let dx = try Tensor.empty([rows, classes], on: dev)
            try dev.run(.softmaxCrossEntropyBackward(logits: x.buffer, labels: z.buffer, dloss: g.buffer,
                                                     dlogits: dx.buffer, rows: rows, classes: classes))
            return [dx]
        }
    }
}

extension Tensor {
    /// A squared-error loss in one op (shape [1]): the mean over the samples `samples` (a range of axis 0, all
    /// by default) of (self − target)², elementwise; or, with `perSampleMean`, of (the mean of each sample's
    /// values − target[i])², as ACAI's critic score is regressed on α. The target is a constant (no gradient
    /// flows into it; nil means zeros) shaped like the selected samples (elementwise) or [samples.count].
    public func squaredErrorMean(target: Tensor? = nil, samples: Range<Int>? = nil,
                                 perSampleMean: Bool = false) throws -> Tensor {
        guard rank >= 1, count > 0 else { throw DeviceError.invalidArgument("squaredErrorMean of an empty tensor \(shape)") }
        let n = shape[0], per = count / n
        let range = samples ?? 0..<n
        guard range.lowerBound >= 0, range.upperBound <= n, !range.isEmpty else {
            throw DeviceError.invalidArgument("squaredErrorMean: samples \(range) outside the \(n) of \(shape)")
        }
        let rows = perSampleMean
            ? RowRange(rows: n, columns: per, start: range.lowerBound, count: range.count)
            : RowRange(rows: count, columns: 1, start: range.lowerBound * per, count: range.count * per)
        if let target, target.count != rows.count || target.device !== device {
            throw DeviceError.invalidArgument("squaredErrorMean: target \(target.shape) on \(target.device.id) for \(rows.count) values of \(shape) on \(device.id)")
        }
        let out = try Tensor.empty([1], on: device)
        try device.run(.squaredErrorMean(a: buffer, target: target?.buffer, loss: out.buffer, range: rows))
        let a = detached(), t = target?.detached(), dev = device
        return Tensor.result(out, "squared_error_mean", [self]) { g, needed in
            let da = try Tensor.empty(a.shape, on: dev)
            try dev.run(.squaredErrorMeanBackward(a: a.buffer, target: t?.buffer, dloss: g.buffer, da: da.buffer,
                                                  range: rows, accumulate: false))
            // The op writes zeros outside the samples.
            return [da.supported(on: range, zeroOutside: true)]
        }
    }
}

extension Array where Element == Int {
    /// A scalar result is shape [1], not [].
    var nonEmpty: [Int] { isEmpty ? [1] : self }
}
