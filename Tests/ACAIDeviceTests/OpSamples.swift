import ACAIDevice
import ACAITestSupport

/// Small ops of every case of `Op`: well-formed ones, and ones with a buffer too small for the sizes they name.
enum OpSamples {
    /// One well-formed op of every case (and of several variants), on buffers of `device` holding random
    /// non-zero data.
    static func valid(on device: any Device, using rng: inout SeededGenerator) throws -> [(String, Op)] {
        func buf(_ n: Int) throws -> DeviceBuffer { try device.upload(TestRandom.uniform(n, excluding: 0.1, using: &rng)) }
        func positive(_ n: Int) throws -> DeviceBuffer { try device.upload(TestRandom.positive(n, using: &rng)) }
        func index(_ n: Int, below bound: Int) throws -> DeviceBuffer {
            try device.upload(TestRandom.indices(n, below: bound, using: &rng))
        }
        let conv = ConvShape(batch: 1, height: 4, width: 4, inChannels: 3, outChannels: 5, kernel: 3)
        let image = ImageShape(batch: 1, height: 4, width: 4, channels: 3)
        let bcast = BroadcastLayout.make([7, 33], [33])!
        let reduce = ReduceLayout(shape: [7, 33], reduced: [true, false])
        var ops: [(String, Op)] = [
            ("fill", .fill(out: try buf(7), value: 1)),
            ("affine", .unary(.affine, x: try buf(7), out: try buf(7), alpha: 2, beta: 1)),
            ("exp", .unary(.exp, x: try buf(7), out: try buf(7), alpha: 1, beta: 0)),
            ("log", .unary(.log, x: try positive(7), out: try buf(7), alpha: 1, beta: 0)),
            ("add", .binary(.add, a: try buf(7), b: try buf(7), out: try buf(7),
                            layout: BroadcastLayout.make([7], [7])!, alpha: 1)),
            ("mul broadcast", .binary(.mul, a: try buf(7 * 33), b: try buf(33), out: try buf(7 * 33), layout: bcast,
                                      alpha: 1)),
            ("reduceSum", .reduceSum(x: try buf(7 * 33), out: try buf(33), layout: reduce)),
            ("argmax", .argReduce(x: try buf(3 * 7 * 5), out: try buf(15), outer: 3, axis: 7, inner: 5, findMax: true)),
            ("gemm", .gemm(a: try buf(7 * 5), b: try buf(5 * 3), c: try buf(7 * 3), shape: GemmShape(m: 7, n: 3, k: 5))),
            ("conv2d", .conv2d(x: try buf(48), w: try buf(135), bias: try buf(5), y: try buf(80), shape: conv,
                               activation: .identity)),
            ("conv2d leaky", .conv2d(x: try buf(48), w: try buf(135), bias: nil, y: try buf(80), shape: conv,
                                     activation: .leakyRelu(alpha: 0.2))),
            ("conv2dBackwardInput", .conv2dBackwardInput(dy: try buf(80), w: try buf(135), dx: try buf(48), shape: conv,
                                                         activation: .identity, output: nil)),
            ("conv2dBackwardInput leaky", .conv2dBackwardInput(dy: try buf(80), w: try buf(135), dx: try buf(48),
                                                               shape: conv, activation: .leakyRelu(alpha: 0.2),
                                                               output: try buf(80))),
            ("conv2dBackwardFilter", .conv2dBackwardFilter(x: try buf(48), dy: try buf(80), dw: try buf(135), db: nil,
                                                           shape: conv, activation: .identity, output: nil,
                                                           accumulate: false)),
            ("conv2dBackwardFilter leaky db accumulate", .conv2dBackwardFilter(
                x: try buf(48), dy: try buf(80), dw: try buf(135), db: try buf(5), shape: conv,
                activation: .leakyRelu(alpha: 0.2), output: try buf(80), accumulate: true)),
            ("avgPool2x2", .avgPool2x2(x: try buf(48), y: try buf(12), shape: image)),
            ("avgPool2x2Backward", .avgPool2x2Backward(dy: try buf(12), dx: try buf(48), shape: image)),
            ("upsample2x", .upsample2x(x: try buf(48), y: try buf(192), shape: image)),
            ("upsample2xBackward", .upsample2xBackward(dy: try buf(192), dx: try buf(48), shape: image)),
            ("copyAxisRange", .copyAxisRange(src: try buf(3 * 5 * 2), dst: try buf(3 * 9 * 2), outer: 3, srcAxis: 5,
                                             dstAxis: 9, inner: 2, srcStart: 1, dstStart: 4, length: 4)),
            ("reverseAxis", .reverseAxis(x: try buf(30), out: try buf(30), outer: 2, axis: 5, inner: 3)),
            ("gatherRows", .gatherRows(table: try buf(4 * 3), index: try index(6, below: 4), out: try buf(18), rows: 6,
                                       tableRows: 4, columns: 3)),
            ("oneHot", .oneHot(index: try index(6, below: 4), out: try buf(24), rows: 6, depth: 4)),
            ("softmaxCrossEntropy", .softmaxCrossEntropy(logits: try buf(12), labels: try positive(12),
                                                         loss: try buf(3), rows: 3, classes: 4)),
            ("softmaxCrossEntropyBackward", .softmaxCrossEntropyBackward(
                logits: try buf(12), labels: try positive(12), dloss: try buf(3), dlogits: try buf(12), rows: 3,
                classes: 4)),
            ("random uniform", .random(.uniform, out: try buf(7), seed: 1, offset: 0)),
            ("random normal", .random(.normal, out: try buf(7), seed: 1, offset: 0)),
            ("random dropout", .random(.dropout(keep: 0.5), out: try buf(7), seed: 1, offset: 0)),
            ("adam", .adam(param: try buf(7), grad: try buf(7), m: try buf(7), v: try positive(7),
                           hyper: AdamStep(learningRateT: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8))),
            ("squaredErrorMean", .squaredErrorMean(a: try buf(7 * 3), target: try buf(4), loss: try buf(1),
                                                   range: RowRange(rows: 7, columns: 3, start: 2, count: 4))),
            ("squaredErrorMeanBackward", .squaredErrorMeanBackward(
                a: try buf(21), target: nil, dloss: try buf(1), da: try buf(21),
                range: RowRange(rows: 7, columns: 3, start: 0, count: 7), accumulate: false)),
            ("accumulateScalars", .accumulateScalars(sources: [try buf(1), try buf(1), try buf(1)], out: try buf(3))),
        ]
        for f in UnaryFunction.allCases {
            ops.append(("unary \(f)", .unary(f, x: try positive(7), out: try buf(7), alpha: 0.5, beta: 0)))
        }
        for f in BinaryFunction.allCases {
            ops.append(("binary \(f)", .binary(f, a: try buf(7 * 33), b: try positive(33), out: try buf(7 * 33),
                                               layout: bcast, alpha: 0.2)))
        }
        return ops
    }

    /// Ops whose buffers are too small for the sizes they name: `validate()` must reject each one.
    static func invalid(on device: any Device, using rng: inout SeededGenerator) throws -> [(String, Op)] {
        func buf(_ n: Int) throws -> DeviceBuffer { try device.upload(TestRandom.uniform(n, excluding: 0.1, using: &rng)) }
        func index(_ n: Int, below bound: Int) throws -> DeviceBuffer {
            try device.upload(TestRandom.indices(n, below: bound, using: &rng))
        }
        let conv = ConvShape(batch: 2, height: 4, width: 4, inChannels: 3, outChannels: 5, kernel: 3)
        let x = 2 * 16 * 3, y = 2 * 16 * 5, w = 9 * 3 * 5
        let image = ImageShape(batch: 2, height: 4, width: 4, channels: 3)  // 96 values, pooled 24, upsampled 384
        let bcast = BroadcastLayout.make([7, 33], [33])!
        let reduce = ReduceLayout(shape: [7, 33], reduced: [true, false])
        let gemm = GemmShape(m: 7, n: 3, k: 5)
        let adam = AdamStep(learningRateT: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8)
        return [
            ("unary: out shorter than x", .unary(.exp, x: try buf(7), out: try buf(5), alpha: 1, beta: 0)),
            ("binary: out shorter than the layout", .binary(.add, a: try buf(231), b: try buf(33), out: try buf(33),
                                                            layout: bcast, alpha: 1)),
            ("binary: a shorter than the layout", .binary(.add, a: try buf(33), b: try buf(33), out: try buf(231),
                                                          layout: bcast, alpha: 1)),
            ("binary: b shorter than the layout", .binary(.mul, a: try buf(231), b: try buf(7), out: try buf(231),
                                                          layout: bcast, alpha: 1)),
            ("reduceSum: x short", .reduceSum(x: try buf(200), out: try buf(33), layout: reduce)),
            ("reduceSum: out short", .reduceSum(x: try buf(231), out: try buf(7), layout: reduce)),
            ("argReduce: x short", .argReduce(x: try buf(30), out: try buf(15), outer: 3, axis: 7, inner: 5,
                                              findMax: true)),
            ("argReduce: out short", .argReduce(x: try buf(105), out: try buf(5), outer: 3, axis: 7, inner: 5,
                                                findMax: false)),
            ("gemm: a short", .gemm(a: try buf(30), b: try buf(15), c: try buf(21), shape: gemm)),
            ("gemm: b short", .gemm(a: try buf(35), b: try buf(5), c: try buf(21), shape: gemm)),
            ("gemm: c short", .gemm(a: try buf(35), b: try buf(15), c: try buf(20), shape: gemm)),
            ("conv2d: x short", .conv2d(x: try buf(x - 1), w: try buf(w), bias: nil, y: try buf(y), shape: conv,
                                        activation: .identity)),
            ("conv2d: w short", .conv2d(x: try buf(x), w: try buf(45), bias: nil, y: try buf(y), shape: conv,
                                        activation: .identity)),
            ("conv2d: bias short", .conv2d(x: try buf(x), w: try buf(w), bias: try buf(3), y: try buf(y), shape: conv,
                                           activation: .identity)),
            ("conv2d: y short", .conv2d(x: try buf(x), w: try buf(w), bias: nil, y: try buf(y / 2), shape: conv,
                                        activation: .leakyRelu(alpha: 0.2))),
            ("conv2d: alpha not finite", .conv2d(x: try buf(x), w: try buf(w), bias: nil, y: try buf(y), shape: conv,
                                                 activation: .leakyRelu(alpha: .nan))),
            ("conv2dBackwardInput: dy short", .conv2dBackwardInput(dy: try buf(y - 5), w: try buf(w), dx: try buf(x),
                                                                   shape: conv, activation: .identity, output: nil)),
            ("conv2dBackwardInput: dx short", .conv2dBackwardInput(dy: try buf(y), w: try buf(w), dx: try buf(x - 3),
                                                                   shape: conv, activation: .identity, output: nil)),
            ("conv2dBackwardInput: leaky without output", .conv2dBackwardInput(
                dy: try buf(y), w: try buf(w), dx: try buf(x), shape: conv, activation: .leakyRelu(alpha: 0.2),
                output: nil)),
            ("conv2dBackwardInput: output short", .conv2dBackwardInput(
                dy: try buf(y), w: try buf(w), dx: try buf(x), shape: conv, activation: .leakyRelu(alpha: 0.2),
                output: try buf(y - 1))),
            ("conv2dBackwardInput: output with identity", .conv2dBackwardInput(
                dy: try buf(y), w: try buf(w), dx: try buf(x), shape: conv, activation: .identity, output: try buf(y))),
            ("conv2dBackwardFilter: dw short", .conv2dBackwardFilter(x: try buf(x), dy: try buf(y), dw: try buf(w - 1),
                                                                     db: nil, shape: conv, activation: .identity,
                                                                     output: nil, accumulate: false)),
            ("conv2dBackwardFilter: db short", .conv2dBackwardFilter(x: try buf(x), dy: try buf(y), dw: try buf(w),
                                                                     db: try buf(4), shape: conv, activation: .identity,
                                                                     output: nil, accumulate: true)),
            ("conv2dBackwardFilter: leaky without output", .conv2dBackwardFilter(
                x: try buf(x), dy: try buf(y), dw: try buf(w), db: try buf(5), shape: conv,
                activation: .leakyRelu(alpha: 0.2), output: nil, accumulate: false)),
            ("avgPool2x2: y short", .avgPool2x2(x: try buf(96), y: try buf(12), shape: image)),
            ("avgPool2x2: x short", .avgPool2x2(x: try buf(48), y: try buf(24), shape: image)),
            ("avgPool2x2Backward: dx short", .avgPool2x2Backward(dy: try buf(24), dx: try buf(90), shape: image)),
            ("upsample2x: y short", .upsample2x(x: try buf(96), y: try buf(96), shape: image)),
            ("upsample2xBackward: dy short", .upsample2xBackward(dy: try buf(96), dx: try buf(96), shape: image)),
            ("copyAxisRange: dst short", .copyAxisRange(src: try buf(30), dst: try buf(20), outer: 3, srcAxis: 5,
                                                        dstAxis: 9, inner: 2, srcStart: 1, dstStart: 4, length: 4)),
            ("copyAxisRange: src short", .copyAxisRange(src: try buf(10), dst: try buf(54), outer: 3, srcAxis: 5,
                                                        dstAxis: 9, inner: 2, srcStart: 1, dstStart: 4, length: 4)),
            ("reverseAxis: out short", .reverseAxis(x: try buf(30), out: try buf(29), outer: 2, axis: 5, inner: 3)),
            ("gatherRows: out short", .gatherRows(table: try buf(12), index: try index(6, below: 4), out: try buf(17),
                                                  rows: 6, tableRows: 4, columns: 3)),
            ("gatherRows: table short", .gatherRows(table: try buf(9), index: try index(6, below: 3), out: try buf(18),
                                                    rows: 6, tableRows: 4, columns: 3)),
            ("gatherRows: index short", .gatherRows(table: try buf(12), index: try index(5, below: 4), out: try buf(18),
                                                    rows: 6, tableRows: 4, columns: 3)),
            ("oneHot: out short", .oneHot(index: try index(6, below: 4), out: try buf(23), rows: 6, depth: 4)),
            ("oneHot: index short", .oneHot(index: try index(5, below: 4), out: try buf(24), rows: 6, depth: 4)),
            ("softmaxCrossEntropy: labels short", .softmaxCrossEntropy(logits: try buf(12), labels: try buf(11),
                                                                       loss: try buf(3), rows: 3, classes: 4)),
            ("softmaxCrossEntropy: loss short", .softmaxCrossEntropy(logits: try buf(12), labels: try buf(12),
                                                                     loss: try buf(2), rows: 3, classes: 4)),
            ("softmaxCrossEntropyBackward: dloss short", .softmaxCrossEntropyBackward(
                logits: try buf(12), labels: try buf(12), dloss: try buf(2), dlogits: try buf(12), rows: 3, classes: 4)),
            ("softmaxCrossEntropyBackward: dlogits short", .softmaxCrossEntropyBackward(
                logits: try buf(12), labels: try buf(12), dloss: try buf(3), dlogits: try buf(8), rows: 3, classes: 4)),
            ("adam: m short", .adam(param: try buf(7), grad: try buf(7), m: try buf(6), v: try buf(7), hyper: adam)),
            ("adam: grad short", .adam(param: try buf(7), grad: try buf(3), m: try buf(7), v: try buf(7), hyper: adam)),
            ("squaredErrorMean: target short", .squaredErrorMean(a: try buf(21), target: try buf(3), loss: try buf(1),
                                                                 range: RowRange(rows: 7, columns: 3, start: 2, count: 4))),
            ("squaredErrorMean: range past the rows", .squaredErrorMean(
                a: try buf(21), target: nil, loss: try buf(1), range: RowRange(rows: 7, columns: 3, start: 5, count: 4))),
            ("squaredErrorMeanBackward: da short", .squaredErrorMeanBackward(
                a: try buf(21), target: nil, dloss: try buf(1), da: try buf(20),
                range: RowRange(rows: 7, columns: 3, start: 0, count: 7), accumulate: true)),
            ("accumulateScalars: out short", .accumulateScalars(sources: [try buf(1), try buf(1)], out: try buf(1))),
            ("accumulateScalars: a source of 2", .accumulateScalars(sources: [try buf(2)], out: try buf(1))),
        ]
    }
}
