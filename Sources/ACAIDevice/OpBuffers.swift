extension Op {
    /// The same op on other buffers: `map` is applied to every buffer it touches (a recorded step plan moves
    /// its ops from the buffers a model allocated to the memory the plan owns).
    public func mapBuffers(_ map: (DeviceBuffer) throws -> DeviceBuffer) rethrows -> Op {
        func m(_ b: DeviceBuffer) throws -> DeviceBuffer { try map(b) }
        func o(_ b: DeviceBuffer?) throws -> DeviceBuffer? { try b.map(map) }
        switch self {
        case let .fill(out, value): return .fill(out: try m(out), value: value)
        case let .unary(f, x, out, alpha, beta): return .unary(f, x: try m(x), out: try m(out), alpha: alpha, beta: beta)
        case let .binary(f, a, b, out, layout, alpha):
            return .binary(f, a: try m(a), b: try m(b), out: try m(out), layout: layout, alpha: alpha)
        case let .reduceSum(x, out, layout): return .reduceSum(x: try m(x), out: try m(out), layout: layout)
        case let .argReduce(x, out, outer, axis, inner, findMax):
            return .argReduce(x: try m(x), out: try m(out), outer: outer, axis: axis, inner: inner, findMax: findMax)
        case let .gemm(a, b, c, shape): return .gemm(a: try m(a), b: try m(b), c: try m(c), shape: shape)
        case let .conv2d(x, w, bias, y, shape, activation):
            return .conv2d(x: try m(x), w: try m(w), bias: try o(bias), y: try m(y), shape: shape, activation: activation)
        case let .conv2dBackwardInput(dy, w, dx, shape, activation, output):
            return .conv2dBackwardInput(dy: try m(dy), w: try m(w), dx: try m(dx), shape: shape, activation: activation,
                                        output: try o(output))
        case let .conv2dBackwardFilter(x, dy, dw, db, shape, activation, output, accumulate):
            return .conv2dBackwardFilter(x: try m(x), dy: try m(dy), dw: try m(dw), db: try o(db), shape: shape,
                                         activation: activation, output: try o(output), accumulate: accumulate)
        case let .avgPool2x2(x, y, shape): return .avgPool2x2(x: try m(x), y: try m(y), shape: shape)
        case let .avgPool2x2Backward(dy, dx, shape): return .avgPool2x2Backward(dy: try m(dy), dx: try m(dx), shape: shape)
        case let .upsample2x(x, y, shape): return .upsample2x(x: try m(x), y: try m(y), shape: shape)
        case let .upsample2xBackward(dy, dx, shape): return .upsample2xBackward(dy: try m(dy), dx: try m(dx), shape: shape)
        case let .copyAxisRange(src, dst, outer, srcAxis, dstAxis, inner, srcStart, dstStart, length):
            return .copyAxisRange(src: try m(src), dst: try m(dst), outer: outer, srcAxis: srcAxis, dstAxis: dstAxis,
                                  inner: inner, srcStart: srcStart, dstStart: dstStart, length: length)
        case let .reverseAxis(x, out, outer, axis, inner):
            return .reverseAxis(x: try m(x), out: try m(out), outer: outer, axis: axis, inner: inner)
        case let .gatherRows(table, index, out, rows, tableRows, columns):
            return .gatherRows(table: try m(table), index: try m(index), out: try m(out), rows: rows,
                               tableRows: tableRows, columns: columns)
        case let .oneHot(index, out, rows, depth): return .oneHot(index: try m(index), out: try m(out), rows: rows, depth: depth)
        case let .softmaxCrossEntropy(logits, labels, loss, rows, classes):
            return .softmaxCrossEntropy(logits: try m(logits), labels: try m(labels), loss: try m(loss), rows: rows,
                                        classes: classes)
        case let .softmaxCrossEntropyBackward(logits, labels, dloss, dlogits, rows, classes):
            return .softmaxCrossEntropyBackward(logits: try m(logits), labels: try m(labels), dloss: try m(dloss),
                                                dlogits: try m(dlogits), rows: rows, classes: classes)
        case let .random(distribution, out, seed, offset):
            return .random(distribution, out: try m(out), seed: seed, offset: offset)
        case let .adam(param, grad, mm, v, hyper):
            return .adam(param: try m(param), grad: try m(grad), m: try m(mm), v: try m(v), hyper: hyper)
        case let .squaredErrorMean(a, target, loss, range):
            return .squaredErrorMean(a: try m(a), target: try o(target), loss: try m(loss), range: range)
        case let .squaredErrorMeanBackward(a, target, dloss, da, range, accumulate):
            return .squaredErrorMeanBackward(a: try m(a), target: try o(target), dloss: try m(dloss), da: try m(da),
                                             range: range, accumulate: accumulate)
        case let .accumulateScalars(sources, out): return .accumulateScalars(sources: try sources.map(map), out: try m(out))
        }
    }
}
