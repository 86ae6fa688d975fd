import ACAIDevice
import Foundation

/// Sums, arg-max/min and the softmax cross-entropy. Sums accumulate short blocks in float SIMD lanes
/// and add the block results in Double, so long reductions stay accurate; the split into parallel
/// pieces depends only on the shape, so results are identical from run to run.
enum CPUReduce {
    // MARK: reduceSum

    static func sum(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, layout: ReduceLayout,
                    scratch: ScratchArena, _ parallel: Parallel) {
        let shape = layout.shape, reduced = layout.reduced, rank = shape.count
        let outputCount = layout.outputCount
        if layout.inputCount == 0 {
            out.update(repeating: 0, count: outputCount)
            return
        }
        if rank == 1 {
            if reduced[0] {
                out[0] = Float(sumAll(x, count: shape[0], parallel))
            } else {
                out.update(from: x, count: shape[0])
            }
            return
        }
        // The last two axes form a slice: [rows, cols] summed over rows (a column sum, the bias gradient)
        // or over cols (row sums). The axes in front of it alternate kept/reduced.
        let rows = shape[rank - 2], cols = shape[rank - 1]
        let columnSum = reduced[rank - 2]
        let region = columnSum ? cols : rows  // outputs one slice produces
        let sliceSize = rows * cols
        let outerShape = Array(shape[0..<(rank - 2)]), outerReduced = Array(reduced[0..<(rank - 2)])
        let keptOuter = zip(outerShape, outerReduced).filter { !$0.1 }.map(\.0)
        let sumOuter = zip(outerShape, outerReduced).filter { $0.1 }.map(\.0)
        let groups = keptOuter.reduce(1, *)  // distinct output regions
        let perGroup = sumOuter.reduce(1, *)  // slices summed into each region

        if groups == 1 && perGroup == 1 && columnSum && cols < 256 {
            // [rows, cols] → [cols] with few columns: split the rows, then add the pieces in order.
            out.update(from: columnSumSplittingRows(x, rows: rows, cols: cols, parallel), count: cols)
            return
        }

        // The input offset of slice (g, s): walk the outer axes from the last one.
        let outerStrides = denseStrides(outerShape).map { $0 * sliceSize }
        func sliceOffset(group: Int, summed: Int) -> Int {
            var g = group, s = summed, offset = 0
            for d in stride(from: outerShape.count - 1, through: 0, by: -1) {
                let n = outerShape[d]
                if outerReduced[d] {
                    offset += (s % n) * outerStrides[d]
                    s /= n
                } else {
                    offset += (g % n) * outerStrides[d]
                    g /= n
                }
            }
            return offset
        }

        // Work items: (group, piece of the region). Pieces never overlap, so no item races another.
        let elementsPerGroup = perGroup * sliceSize
        let wantedItems = parallel.threads > 1 && groups * elementsPerGroup > Parallel.serialLimit
            ? parallel.threads * 4 : 1
        let piecesPerGroup = max(1, min(region, (wantedItems + groups - 1) / groups))
        let pieceSize = (region + piecesPerGroup - 1) / piecesPerGroup
        parallel.forEach(groups * piecesPerGroup) { item in
            let g = item / piecesPerGroup
            let lo = (item % piecesPerGroup) * pieceSize, hi = min(region, lo + pieceSize)
            if lo >= hi { return }
            var acc = [Double](repeating: 0, count: hi - lo)
            acc.withUnsafeMutableBufferPointer { accBuffer in
                let a = accBuffer.baseAddress!
                for s in 0..<perGroup {
                    let slice = x + sliceOffset(group: g, summed: s)
                    if columnSum {
                        accumulateColumns(slice, rows: rows, cols: cols, columns: lo..<hi, into: a - lo)
                    } else {
                        for r in lo..<hi { a[r - lo] += rowSum(slice + r * cols, count: cols) }
                    }
                }
                let o = out + g * region
                for i in lo..<hi { o[i] = Float(a[i - lo]) }
            }
        }
    }

    /// Σ x[0..<count] in pieces fixed by the count, added in order.
    private static func sumAll(_ x: UnsafePointer<Float>, count: Int, _ parallel: Parallel) -> Double {
        let pieceSize = 1 << 16
        let pieces = (count + pieceSize - 1) / pieceSize
        if pieces <= 1 || parallel.threads <= 1 { return rowSum(x, count: count) }
        var partial = [Double](repeating: 0, count: pieces)
        partial.withUnsafeMutableBufferPointer { p in
            let base = p.baseAddress!
            parallel.forEach(pieces) { i in
                let lo = i * pieceSize
                base[i] = rowSum(x + lo, count: min(count, lo + pieceSize) - lo)
            }
        }
        return partial.reduce(0, +)
    }

    /// Column sums of a [rows, cols] matrix with rows split into shape-determined pieces.
    private static func columnSumSplittingRows(_ x: UnsafePointer<Float>, rows: Int, cols: Int,
                                               _ parallel: Parallel) -> [Float] {
        let rowsPerPiece = max(64, (1 << 16) / max(cols, 1))
        let pieces = (rows + rowsPerPiece - 1) / rowsPerPiece
        var partial = [Double](repeating: 0, count: pieces * cols)
        partial.withUnsafeMutableBufferPointer { p in
            let base = p.baseAddress!
            let work = { (i: Int) in
                let lo = i * rowsPerPiece, hi = min(rows, lo + rowsPerPiece)
                accumulateColumns(x + lo * cols, rows: hi - lo, cols: cols, columns: 0..<cols, into: base + i * cols)
            }
            if pieces <= 1 || parallel.threads <= 1 {
                for i in 0..<pieces { work(i) }
            } else {
                parallel.forEach(pieces) { work($0) }
            }
        }
        var result = [Float](repeating: 0, count: cols)
        for c in 0..<cols {
            var s = 0.0
            for i in 0..<pieces { s += partial[i * cols + c] }
            result[c] = Float(s)
        }
        return result
    }

    /// acc[c] += Σ_r x[r, c] for c in `columns`: 64-row blocks summed in float lanes, then in Double.
    private static func accumulateColumns(_ x: UnsafePointer<Float>, rows: Int, cols: Int, columns: Range<Int>,
                                          into acc: UnsafeMutablePointer<Double>) {
        var r = 0
        while r < rows {
            let end = min(rows, r + 64)
            var c = columns.lowerBound
            while c + 16 <= columns.upperBound {
                var s = Vector()
                for rr in r..<end { s += load(x + rr * cols + c) }
                for l in 0..<16 { acc[c + l] += Double(s[l]) }
                c += 16
            }
            while c < columns.upperBound {
                var s: Float = 0
                for rr in r..<end { s += x[rr * cols + c] }
                acc[c] += Double(s)
                c += 1
            }
            r = end
        }
    }

    /// Σ x[0..<count]: 4096-element blocks summed in 64 float lanes, block sums added in Double; short
    /// rows (the common [rows, channels] case) in one or two vectors.
    static func rowSum(_ x: UnsafePointer<Float>, count: Int) -> Double {
        if count < 64 {
            var i = 0
            var v = Vector()
            while i + 16 <= count {
                v += load(x + i)
                i += 16
            }
            var tail: Float = 0
            while i < count {
                tail += x[i]
                i += 1
            }
            return Double(horizontalSum(v) + tail)
        }
        var total = 0.0
        var i = 0
        while i < count {
            let end = min(count, i + 4096)
            var s0 = Vector(), s1 = Vector(), s2 = Vector(), s3 = Vector()
            while i + 64 <= end {
                s0 += load(x + i)
                s1 += load(x + i + 16)
                s2 += load(x + i + 32)
                s3 += load(x + i + 48)
                i += 64
            }
            var tail: Float = 0
            while i < end {
                tail += x[i]
                i += 1
            }
            total += Double(horizontalSum((s0 + s1) + (s2 + s3))) + Double(tail)
        }
        return total
    }

    // MARK: argmax / argmin

    static func argReduce(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, outer: Int, axis: Int,
                          inner: Int, findMax: Bool, _ parallel: Parallel) {
        let outputs = outer * inner
        if outputs == 0 { return }
        parallel.chunks(outputs, serialLimit: max(1, Parallel.serialLimit / max(axis, 1)), align: 1) { range in
            var best = [Float](repeating: 0, count: min(inner, range.count))
            var position = range.lowerBound
            while position < range.upperBound {
                // A run of outputs sharing `o`: scan the axis once, comparing whole runs (vectorisable).
                let o = position / inner, i0 = position % inner
                let n = min(inner - i0, range.upperBound - position)
                let base = x + o * axis * inner + i0
                let index = out + position
                for i in 0..<n {
                    best[i] = base[i]
                    index[i] = 0
                }
                for a in 1..<max(axis, 1) {
                    let row = base + a * inner
                    let fa = Float(a)
                    // Strict comparisons keep the first index on ties.
                    if findMax {
                        for i in 0..<n where row[i] > best[i] {
                            best[i] = row[i]
                            index[i] = fa
                        }
                    } else {
                        for i in 0..<n where row[i] < best[i] {
                            best[i] = row[i]
                            index[i] = fa
                        }
                    }
                }
                position += n
            }
        }
    }

    // MARK: Softmax cross-entropy

    static func softmaxCrossEntropy(_ logits: UnsafePointer<Float>, _ labels: UnsafePointer<Float>,
                                    _ loss: UnsafeMutablePointer<Float>, rows: Int, classes: Int,
                                    _ parallel: Parallel) {
        parallel.chunks(rows, serialLimit: max(1, Parallel.serialLimit / max(classes, 1)), align: 1) { range in
            for r in range {
                let z = logits + r * classes, y = labels + r * classes
                let (m, logSum) = maxAndLogSumExp(z, classes)
                var l = 0.0
                // −Σ y·log softmax(z), with log softmax = (z − max) − log Σ e^(z − max).
                for c in 0..<classes { l -= Double(y[c]) * (Double(z[c] - m) - logSum) }
                loss[r] = Float(l)
            }
        }
    }

    static func softmaxCrossEntropyBackward(_ logits: UnsafePointer<Float>, _ labels: UnsafePointer<Float>,
                                            _ dloss: UnsafePointer<Float>, _ dlogits: UnsafeMutablePointer<Float>,
                                            rows: Int, classes: Int, _ parallel: Parallel) {
        parallel.chunks(rows, serialLimit: max(1, Parallel.serialLimit / max(classes, 1)), align: 1) { range in
            for r in range {
                let z = logits + r * classes, y = labels + r * classes, d = dlogits + r * classes
                let (m, logSum) = maxAndLogSumExp(z, classes)
                let g = dloss[r]
                for c in 0..<classes {
                    let p = Float(exp(Double(z[c] - m) - logSum))
                    d[c] = g * (p - y[c])
                }
            }
        }
    }

    /// The mean of row r of a [rows, columns] buffer, in Double.
    @inline(__always)
    private static func rowMean(_ a: UnsafePointer<Float>, _ r: Int, _ columns: Int) -> Double {
        if columns == 1 { return Double(a[r]) }
        var s = 0.0
        for c in 0..<columns { s += Double(a[r * columns + c]) }
        return s / Double(columns)
    }

    /// loss[0] = mean over the range's rows of (row mean − target)², summed in Double.
    static func squaredErrorMean(_ a: UnsafePointer<Float>, target: UnsafePointer<Float>?,
                                 loss: UnsafeMutablePointer<Float>, _ r: RowRange) {
        var s = 0.0
        for i in 0..<r.count {
            let d = rowMean(a, r.start + i, r.columns) - Double(target?[i] ?? 0)
            s += d * d
        }
        loss[0] = Float(s / Double(r.count))
    }

    static func squaredErrorMeanBackward(_ a: UnsafePointer<Float>, target: UnsafePointer<Float>?,
                                         dloss: UnsafePointer<Float>, da: UnsafeMutablePointer<Float>, _ r: RowRange,
                                         accumulate: Bool, _ parallel: Parallel) {
        let scale = 2 * Double(dloss[0]) / (Double(r.count) * Double(r.columns))
        parallel.chunks(r.rows, serialLimit: max(1, Parallel.serialLimit / r.columns), align: 1) { rows in
            for row in rows {
                let d = da + row * r.columns
                guard row >= r.start, row < r.start + r.count else {
                    if !accumulate { d.update(repeating: 0, count: r.columns) }
                    continue
                }
                let g = Float(scale * (rowMean(a, row, r.columns) - Double(target?[row - r.start] ?? 0)))
                for c in 0..<r.columns { d[c] = accumulate ? d[c] + g : g }
            }
        }
    }

    /// The row maximum and log Σ e^(z − max), the latter in Double.
    @inline(__always)
    private static func maxAndLogSumExp(_ z: UnsafePointer<Float>, _ n: Int) -> (Float, Double) {
        var m = -Float.infinity
        for c in 0..<n { m = max(m, z[c]) }
        var s = 0.0
        for c in 0..<n { s += Double(expf(z[c] - m)) }
        return (m, log(s))
    }
}
