// Matrix products, convolutions, pooling and upsampling, with their gradients.

extension Tensor {
    /// op(self)·op(other) for 2-D tensors, op = transpose when asked.
    public func matmul(_ other: Tensor, transposeA: Bool = false, transposeB: Bool = false) throws -> Tensor {
        guard rank == 2, other.rank == 2 else {
            throw DeviceError.invalidArgument("matmul needs 2-D tensors, got \(shape) and \(other.shape)")
        }
        let m = transposeA ? shape[1] : shape[0], k = transposeA ? shape[0] : shape[1]
        let k2 = transposeB ? other.shape[1] : other.shape[0], n = transposeB ? other.shape[0] : other.shape[1]
        guard k == k2 else {
            throw DeviceError.invalidArgument("matmul: inner sizes differ: \(shape)\(transposeA ? "ᵀ" : "") · \(other.shape)\(transposeB ? "ᵀ" : "")")
        }
        let out = try Tensor.empty([m, n], on: device)
        try device.run(.gemm(a: buffer, b: other.buffer, c: out.buffer,
                             shape: GemmShape(m: m, n: n, k: k, transA: transposeA, transB: transposeB)))
        let a = detached(), b = other.detached(), dev = device
        let rule: (Tensor, [Bool]) throws -> [Tensor?] = { g, needed in
            // C = op(A)·op(B): dop(A) = g·op(B)ᵀ, dop(B) = op(A)ᵀ·g, transposed back when needed.
            let ga: Tensor? = !needed[0] ? nil : transposeA ? try b.matmul(g, transposeA: transposeB, transposeB: true)
                                                         : try g.matmul(b, transposeB: !transposeB)
            let gb: Tensor? = !needed[1] ? nil : transposeB ? try g.matmul(a, transposeA: true, transposeB: transposeA)
                                                         : try a.matmul(g, transposeA: !transposeA)
            return [ga, gb]
        }
        return Tensor.result(out, "matmul", [self, other], backward: rule, backwardInto: { g, needed, sinks in
            // A dense layer's weight (B, not transposed): Aᵀ·g straight into its gradient buffer, added with
            // beta = 1 when it already holds a contribution.
            guard needed[1], let sink = sinks[1], !transposeB else { return try rule(g, needed) }
            try dev.run(.gemm(a: a.buffer, b: g.buffer, c: sink.tensor.buffer,
                              shape: GemmShape(m: k, n: n, k: m, transA: !transposeA, beta: sink.accumulate ? 1 : 0)))
            return [try rule(g, [needed[0], false])[0], sink.tensor]
        })
    }

    /// act(conv(self, filter) + bias): convolution of NHWC `self` with an HWIO filter `[k, k, cin, cout]`,
    /// stride 1, 'same' padding, an optional bias `[cout]` and a fused activation. The backward rule is one
    /// input-gradient op and one filter-gradient op (which also sums the bias gradient); both mask the
    /// incoming gradient with act'(y) from the saved output y, so no separate activation gradient runs.
    public func conv2d(_ filter: Tensor, bias: Tensor? = nil, activation: Activation = .identity) throws -> Tensor {
        guard rank == 4, filter.rank == 4, filter.shape[0] == filter.shape[1], filter.shape[2] == shape[3],
              [1, 3].contains(filter.shape[0]) else {
            throw DeviceError.invalidArgument("conv2d: input \(shape) (NHWC) and filter \(filter.shape) ([k, k, cin, cout], k 1 or 3) do not fit")
        }
        if let bias, bias.shape != [filter.shape[3]] {
            throw DeviceError.invalidArgument("conv2d: bias shape \(bias.shape), expected [\(filter.shape[3])]")
        }
        let cs = ConvShape(batch: shape[0], height: shape[1], width: shape[2], inChannels: shape[3],
                           outChannels: filter.shape[3], kernel: filter.shape[0])
        let out = try Tensor.empty([cs.batch, cs.height, cs.width, cs.outChannels], on: device)
        try device.run(.conv2d(x: buffer, w: filter.buffer, bias: bias?.buffer, y: out.buffer, shape: cs,
                               activation: activation))
        let x = detached(), w = filter.detached(), dev = device
        // The mask act'(y) is read from the output itself (only kept when there is an activation).
        let saved: Tensor? = activation.isIdentity ? nil : out.detached()
        let hasBias = bias != nil
        var inputs = [self, filter]
        if let bias { inputs.append(bias) }
        /// dx (when needed) and the parameter gradients from one filter-gradient op, into `sinks` (the
        /// parameters' views of their optimiser's gradient buffer) when there are some. A gradient with a
        /// row support runs both ops on those rows only (the others add nothing to dw and db).
        func rule(_ g: Tensor, _ needed: [Bool], _ sinks: [GradientSink?]) throws -> [Tensor?] {
            let dxT: Tensor? = needed[0] ? try Tensor.empty(x.shape, on: dev) : nil
            var g = g, rows = 0..<cs.batch
            var buffers: [DeviceBuffer?] = [g.buffer, x.buffer, saved?.buffer, dxT?.buffer]
            if let restricted = g.restrictedRows {
                if let views = try rowViews(restricted, of: [g, x, saved, dxT]) {
                    rows = restricted
                    buffers = views
                } else {
                    g = try g.materialized()
                }
            }
            let gB = buffers[0]!, xB = buffers[1]!, savedB = buffers[2]
            var shape = cs
            shape.batch = rows.count
            var dx: Tensor?
            if let dxT {
                try dev.run(.conv2dBackwardInput(dy: gB, w: w.buffer, dx: buffers[3]!, shape: shape,
                                                 activation: activation, output: savedB))
                dx = dxT.supported(on: rows, zeroOutside: false)
            }
            let wantsBias = hasBias && needed[2]
            var dw: Tensor?, db: Tensor?
            if needed[1] || wantsBias {
                // Both into their sinks when both have one in the same state (overwrite or add), else fresh.
                let sinkW = sinks.count > 1 ? sinks[1] : nil, sinkB = hasBias && sinks.count > 2 ? sinks[2] : nil
                let direct = sinkW != nil && (!wantsBias || (sinkB != nil && sinkB!.accumulate == sinkW!.accumulate))
                let dwT = direct ? sinkW!.tensor : try Tensor.empty(w.shape, on: dev)
                let dbT: Tensor? = !wantsBias ? nil : direct ? sinkB!.tensor : try Tensor.empty([cs.outChannels], on: dev)
                try dev.run(.conv2dBackwardFilter(x: xB, dy: gB, dw: dwT.buffer, db: dbT?.buffer,
                                                  shape: shape, activation: activation, output: savedB,
                                                  accumulate: direct && sinkW!.accumulate))
                dw = needed[1] ? dwT : nil
                db = dbT
            }
            return hasBias ? [dx, dw, db] : [dx, dw]
        }
        return Tensor.result(out, "conv2d", inputs, acceptsRowSupport: true,
                             backward: { g, needed in try rule(g, needed, []) },
                             backwardInto: { g, needed, sinks in try rule(g, needed, sinks) })
    }

    var imageShape: ImageShape { ImageShape(batch: shape[0], height: shape[1], width: shape[2], channels: shape[3]) }

    /// 2×2 average pooling of NHWC (height and width even).
    public func avgPool2x2() throws -> Tensor {
        guard rank == 4, shape[1] % 2 == 0, shape[2] % 2 == 0 else {
            throw DeviceError.invalidArgument("avgPool2x2 needs NHWC with even height and width, got \(shape)")
        }
        let s = imageShape, dev = device
        let out = try Tensor.empty([s.batch, s.height / 2, s.width / 2, s.channels], on: device)
        try device.run(.avgPool2x2(x: buffer, y: out.buffer, shape: s))
        return Tensor.result(out, "avgpool", [self], acceptsRowSupport: true) { g, needed in
            try [perSampleBackward(g, inputShape: s) { dy, dx, rows in
                var part = s
                part.batch = rows
                try dev.run(.avgPool2x2Backward(dy: dy, dx: dx, shape: part))
            }]
        }
    }

    /// 2× nearest-neighbour upsampling of NHWC.
    public func upsample2x() throws -> Tensor {
        guard rank == 4 else { throw DeviceError.invalidArgument("upsample2x needs NHWC, got \(shape)") }
        let s = imageShape, dev = device
        let out = try Tensor.empty([s.batch, s.height * 2, s.width * 2, s.channels], on: device)
        try device.run(.upsample2x(x: buffer, y: out.buffer, shape: s))
        return Tensor.result(out, "upsample", [self], acceptsRowSupport: true) { g, needed in
            try [perSampleBackward(g, inputShape: s) { dy, dx, rows in
                var part = s
                part.batch = rows
                try dev.run(.upsample2xBackward(dy: dy, dx: dx, shape: part))
            }]
        }
    }
}

/// The input gradient of a per-sample image op from its output gradient `g`: `run(dy, dx, rows)` on the rows of
/// g's support only (views of them) when it has one, else on all rows.
private func perSampleBackward(_ g: Tensor, inputShape s: ImageShape,
                               _ run: (_ dy: DeviceBuffer, _ dx: DeviceBuffer, _ rows: Int) throws -> Void) throws
    -> Tensor {
    let dx = try Tensor.empty([s.batch, s.height, s.width, s.channels], on: g.device)
    if let rows = g.restrictedRows, let views = try rowViews(rows, of: [g, dx]) {
        try run(views[0]!, views[1]!, rows.count)
        return dx.supported(on: rows, zeroOutside: false)
    }
    try run(try g.materialized().buffer, dx.buffer, s.batch)
    return dx
}
