extension Op {
    /// Checks that every buffer is large enough for the sizes the op names; throws
    /// `DeviceError.invalidArgument` naming the op, the buffer and the expected size.
    ///
    /// Buffers that hold a whole tensor must have exactly its element count (a pool rounds an empty
    /// tensor up to one float, so 1 is accepted where 0 is expected). Strided or product inputs need
    /// only be large enough.
    public func validate() throws {
        let op = name
        func fail(_ message: String) -> DeviceError { .invalidArgument("\(op): \(message)") }
        func nonNegative(_ values: [(String, Int)]) throws {
            for (label, value) in values where value < 0 { throw fail("\(label) is \(value), expected >= 0") }
        }
        /// Exact size of a dense tensor.
        func exact(_ buffer: DeviceBuffer, _ label: String, _ expected: Int) throws {
            guard buffer.count == expected || (expected == 0 && buffer.count == 1) else {
                throw fail("\(label) has \(buffer.count) floats, expected \(expected)")
            }
        }
        func atLeast(_ buffer: DeviceBuffer, _ label: String, _ expected: Int) throws {
            guard buffer.count >= expected else {
                throw fail("\(label) has \(buffer.count) floats, expected at least \(expected)")
            }
        }
        func image(_ s: ImageShape) throws {
            try nonNegative([("batch", s.batch), ("height", s.height), ("width", s.width), ("channels", s.channels)])
        }
        func conv(_ s: ConvShape) throws {
            try nonNegative([("batch", s.batch), ("height", s.height), ("width", s.width),
                             ("inChannels", s.inChannels), ("outChannels", s.outChannels)])
            guard s.kernel == 1 || s.kernel == 3 else { throw fail("kernel is \(s.kernel), expected 1 or 3") }
        }
        func validate(_ r: RowRange) throws {
            guard r.rows >= 0, r.columns >= 1, r.count >= 1, r.start >= 0, r.start + r.count <= r.rows else {
                throw fail("rows \(r.start)..<\(r.start + r.count) of \(r.rows) rows of \(r.columns) columns: expected at least one row and one column, inside the buffer")
            }
        }
        /// A fused activation's slope must be a finite number.
        func slope(_ activation: Activation) throws {
            if case let .leakyRelu(alpha) = activation, !alpha.isFinite {
                throw fail("leaky ReLU alpha is \(alpha), expected a finite number")
            }
        }
        /// The saved forward output a backward pass masks with: required (and y-sized) iff the activation
        /// is not the identity.
        func savedOutput(_ activation: Activation, _ output: DeviceBuffer?, _ count: Int) throws {
            switch (activation, output) {
            case (.identity, nil): return
            case (.identity, .some): throw fail("output given with the identity activation (nothing to mask)")
            case (.leakyRelu, nil): throw fail("output (the saved forward y) is required with a leaky ReLU")
            case let (.leakyRelu, .some(output)): try exact(output, "output", count)
            }
        }
        /// One past the largest element a strided view reads (0 for an empty view).
        func extent(_ shape: [Int], _ strides: [Int]) -> Int {
            if shape.contains(0) { return 0 }
            return zip(shape, strides).reduce(1) { $0 + ($1.0 - 1) * $1.1 }
        }

        switch self {
        case .fill:
            return
        case let .unary(_, x, out, _, _):
            try exact(x, "x", out.count)
        case let .binary(_, a, b, out, layout, _):
            try nonNegative(layout.shape.enumerated().map { ("shape[\($0.offset)]", $0.element) })
            try nonNegative(layout.aStrides.enumerated().map { ("aStrides[\($0.offset)]", $0.element) })
            try nonNegative(layout.bStrides.enumerated().map { ("bStrides[\($0.offset)]", $0.element) })
            try exact(out, "out", layout.count)
            try atLeast(a, "a", extent(layout.shape, layout.aStrides))
            try atLeast(b, "b", extent(layout.shape, layout.bStrides))
        case let .reduceSum(x, out, layout):
            try nonNegative(layout.shape.enumerated().map { ("shape[\($0.offset)]", $0.element) })
            try exact(x, "x", layout.inputCount)
            try exact(out, "out", layout.outputCount)
        case let .argReduce(x, out, outer, axis, inner, _):
            try nonNegative([("outer", outer), ("axis", axis), ("inner", inner)])
            if axis == 0 && outer * inner > 0 { throw fail("axis is 0: there is no element to pick") }
            try exact(x, "x", outer * axis * inner)
            try exact(out, "out", outer * inner)
        case let .gemm(a, b, c, s):
            try nonNegative([("m", s.m), ("n", s.n), ("k", s.k)])
            try atLeast(a, "a", s.m * s.k)
            try atLeast(b, "b", s.k * s.n)
            try atLeast(c, "c", s.m * s.n)
        case let .conv2d(x, w, bias, y, s, activation):
            try conv(s)
            try slope(activation)
            let pixels = s.batch * s.height * s.width
            try exact(x, "x", pixels * s.inChannels)
            try exact(w, "w", s.kernel * s.kernel * s.inChannels * s.outChannels)
            if let bias { try exact(bias, "bias", s.outChannels) }
            try exact(y, "y", pixels * s.outChannels)
        case let .conv2dBackwardInput(dy, w, dx, s, activation, output):
            try conv(s)
            try slope(activation)
            let pixels = s.batch * s.height * s.width
            try exact(dy, "dy", pixels * s.outChannels)
            try exact(w, "w", s.kernel * s.kernel * s.inChannels * s.outChannels)
            try exact(dx, "dx", pixels * s.inChannels)
            try savedOutput(activation, output, pixels * s.outChannels)
        case let .conv2dBackwardFilter(x, dy, dw, db, s, activation, output, _):
            try conv(s)
            try slope(activation)
            let pixels = s.batch * s.height * s.width
            try exact(x, "x", pixels * s.inChannels)
            try exact(dy, "dy", pixels * s.outChannels)
            try exact(dw, "dw", s.kernel * s.kernel * s.inChannels * s.outChannels)
            if let db { try exact(db, "db", s.outChannels) }
            try savedOutput(activation, output, pixels * s.outChannels)
        case let .avgPool2x2(x, y, s):
            try image(s)
            guard s.height % 2 == 0, s.width % 2 == 0 else {
                throw fail("input is \(s.height)x\(s.width), expected even height and width")
            }
            try exact(x, "x", s.count)
            try exact(y, "y", s.batch * (s.height / 2) * (s.width / 2) * s.channels)
        case let .avgPool2x2Backward(dy, dx, s):
            try image(s)
            guard s.height % 2 == 0, s.width % 2 == 0 else {
                throw fail("dx is \(s.height)x\(s.width), expected even height and width")
            }
            try exact(dy, "dy", s.batch * (s.height / 2) * (s.width / 2) * s.channels)
            try exact(dx, "dx", s.count)
        case let .upsample2x(x, y, s):
            try image(s)
            try exact(x, "x", s.count)
            try exact(y, "y", 4 * s.count)
        case let .upsample2xBackward(dy, dx, s):
            try image(s)
            try exact(dy, "dy", 4 * s.count)
            try exact(dx, "dx", s.count)
        case let .copyAxisRange(src, dst, outer, srcAxis, dstAxis, inner, srcStart, dstStart, length):
            try nonNegative([("outer", outer), ("srcAxis", srcAxis), ("dstAxis", dstAxis), ("inner", inner),
                             ("srcStart", srcStart), ("dstStart", dstStart), ("length", length)])
            guard srcStart + length <= srcAxis else {
                throw fail("source range \(srcStart)..<\(srcStart + length) exceeds axis size \(srcAxis)")
            }
            guard dstStart + length <= dstAxis else {
                throw fail("destination range \(dstStart)..<\(dstStart + length) exceeds axis size \(dstAxis)")
            }
            try exact(src, "src", outer * srcAxis * inner)
            try exact(dst, "dst", outer * dstAxis * inner)
        case let .reverseAxis(x, out, outer, axis, inner):
            try nonNegative([("outer", outer), ("axis", axis), ("inner", inner)])
            try exact(x, "x", outer * axis * inner)
            try exact(out, "out", outer * axis * inner)
        case let .gatherRows(table, index, out, rows, tableRows, columns):
            try nonNegative([("rows", rows), ("tableRows", tableRows), ("columns", columns)])
            try exact(table, "table", tableRows * columns)
            try exact(index, "index", rows)
            try exact(out, "out", rows * columns)
        case let .oneHot(index, out, rows, depth):
            try nonNegative([("rows", rows), ("depth", depth)])
            try exact(index, "index", rows)
            try exact(out, "out", rows * depth)
        case let .softmaxCrossEntropy(logits, labels, loss, rows, classes):
            try nonNegative([("rows", rows), ("classes", classes)])
            try exact(logits, "logits", rows * classes)
            try exact(labels, "labels", rows * classes)
            try exact(loss, "loss", rows)
        case let .softmaxCrossEntropyBackward(logits, labels, dloss, dlogits, rows, classes):
            try nonNegative([("rows", rows), ("classes", classes)])
            try exact(logits, "logits", rows * classes)
            try exact(labels, "labels", rows * classes)
            try exact(dloss, "dloss", rows)
            try exact(dlogits, "dlogits", rows * classes)
        case let .random(distribution, _, _, _):
            if case let .dropout(keep) = distribution, !(keep > 0 && keep <= 1) {
                throw fail("keep probability is \(keep), expected 0 < keep <= 1")
            }
        case let .adam(param, grad, m, v, _):
            try exact(grad, "grad", param.count)
            try exact(m, "m", param.count)
            try exact(v, "v", param.count)
        case let .squaredErrorMean(a, target, loss, range):
            try validate(range)
            try exact(a, "a", range.rows * range.columns)
            if let target { try exact(target, "target", range.count) }
            try exact(loss, "loss", 1)
        case let .squaredErrorMeanBackward(a, target, dloss, da, range, _):
            try validate(range)
            try exact(a, "a", range.rows * range.columns)
            if let target { try exact(target, "target", range.count) }
            try exact(dloss, "dloss", 1)
            try exact(da, "da", range.rows * range.columns)
        case let .accumulateScalars(sources, out):
            guard !sources.isEmpty else { throw fail("no sources") }
            for (i, source) in sources.enumerated() { try exact(source, "source \(i)", 1) }
            try exact(out, "out", sources.count)
        }
    }
}
