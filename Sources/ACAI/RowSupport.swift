/// Gradients that are zero outside some rows of the batch, and the backward rules that skip those rows.
///
/// A loss on part of a batch (ACAI's adversarial term reads the critic's scores of the interpolants only,
/// the first half of the batch the critic runs on) has a gradient that is zero on the other rows, and every
/// per-sample layer keeps it so on the way back. Rules that accept such a gradient (convolution, pooling,
/// upsampling, concatenation) compute only its rows, on views of them, and pass the support on; the rows
/// outside are then left unwritten. Any other consumer first gets the gradient with the rows outside
/// zeroed (`materialized()`), so no rule ever reads them.
struct RowSupport: Equatable {
    /// The rows of axis 0 that may be nonzero.
    let rows: Range<Int>
    /// Whether the memory of the other rows holds zeros already (a loss's gradient writes them), so making
    /// the tensor dense costs nothing.
    let zeroOutside: Bool
}

extension Tensor {
    /// The same tensor marked as zero outside `rows` (no mark when `rows` is all of axis 0).
    func supported(on rows: Range<Int>, zeroOutside: Bool) -> Tensor {
        var t = self
        t.rowSupport = rows == 0..<(shape.first ?? 0) ? nil : RowSupport(rows: rows, zeroOutside: zeroOutside)
        return t
    }

    /// The rows a backward rule must compute: the support, or nil for all of them.
    var restrictedRows: Range<Int>? { rowSupport.map(\.rows) }

    /// The gradient with the rows outside its support set to zero, and no support mark.
    func materialized() throws -> Tensor {
        guard let support = rowSupport else { return self }
        var dense = self
        dense.rowSupport = nil
        if support.zeroOutside { return dense }
        let n = shape[0], inner = count / max(n, 1)
        for rows in [0..<support.rows.lowerBound, support.rows.upperBound..<n] where !rows.isEmpty {
            if let view = try rowsBuffer(rows) {
                try device.run(.fill(out: view, value: 0))
            } else {
                let zeros = try Tensor.zeros([rows.count * inner], on: device)
                try device.run(.copyAxisRange(src: zeros.buffer, dst: buffer, outer: 1, srcAxis: rows.count * inner,
                                              dstAxis: count, inner: 1, srcStart: 0, dstStart: rows.lowerBound * inner,
                                              length: rows.count * inner))
            }
        }
        return dense
    }

    /// The memory of rows `rows` of axis 0: the buffer itself for all rows, else a view (of the allocation the
    /// buffer is or looks into), or nil where the device cannot start a view there.
    func rowsBuffer(_ rows: Range<Int>) throws -> DeviceBuffer? {
        let n = shape.first ?? 0
        if rows == 0..<n { return buffer }
        guard !rows.isEmpty, rows.lowerBound >= 0, rows.upperBound <= n else { return nil }
        let inner = count / n
        let start = buffer.offset + rows.lowerBound * inner
        guard start % max(device.viewAlignment, 1) == 0 else { return nil }
        return try device.view(of: buffer.parent ?? buffer, offset: start, count: rows.count * inner)
    }
}

/// The buffers of the same rows of several tensors that share axis 0, for running a per-sample op on those
/// rows alone; nil when some cannot be viewed there (the rule then runs on all rows).
func rowViews(_ rows: Range<Int>, of tensors: [Tensor?]) throws -> [DeviceBuffer?]? {
    var views: [DeviceBuffer?] = []
    for t in tensors {
        guard let t else {
            views.append(nil)
            continue
        }
        guard let view = try t.rowsBuffer(rows) else { return nil }
        views.append(view)
    }
    return views
}
