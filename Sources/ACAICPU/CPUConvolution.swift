import ACAIDevice
import CBLAS
import Foundation

/// How a convolution is computed.
enum ConvAlgorithm: String {
    /// Swift SIMD register-tiled loops over a zero-padded copy of the input (no im2col matrix).
    case direct
    /// im2col / col2im tiles and OpenBLAS sgemm.
    case blas
}

/// The three convolution ops (NHWC, HWIO, stride 1, 'same' padding, k ∈ {1, 3}).
///
/// Why not just im2col + sgemm: the reference model's layers have few output channels (16..32) or few
/// pixels (2×2, 4×4), and OpenBLAS runs such thin products at a fraction of its square-matrix speed,
/// after paying for a 9× im2col copy. The direct kernels here keep a tile of R pixels × 16·C output
/// channels in SIMD registers (`ConvTiles`) and stream the K = k·k·cin products through it, reading a
/// zero-padded copy of the input in place: for a kernel row kh, the (kw, ci) inputs of a pixel are one
/// contiguous run of k·cin floats, and so are the matching filter rows. The input gradient is the same
/// product with the filter flipped and transposed; the filter gradient swaps the roles (products in
/// registers, pixels streamed). At most 4 output channels use dot-product kernels instead.
///
/// Every output is accumulated in a fixed order (kh, then kw·cin + ci; for the filter gradient, pixel
/// chunks and groups fixed by the shape), so results do not depend on the tile shapes or the threads.
///
/// The direct loops need the compiler to use AVX (`-target-cpu native`, set in Package.swift and
/// CMakeLists.txt); a baseline x86-64 (SSE2) build runs them 2-5× slower. The algorithm is never chosen by
/// timing, so results do not depend on machine load: a run resumed in a new process computes exactly what
/// the uninterrupted run would. `ACAI_CPU_CONV=blas` selects im2col + OpenBLAS instead (for comparisons).
struct CPUConvolution {
    let shape: ConvShape
    let parallel: Parallel
    let scratch: ScratchArena
    let override: ConvAlgorithm?

    private var n: Int { shape.batch }
    private var h: Int { shape.height }
    private var w: Int { shape.width }
    private var k: Int { shape.kernel }
    private var pixels: Int { n * h * w }

    /// Whether an op goes through im2col + OpenBLAS: only when asked to with `ACAI_CPU_CONV=blas`.
    private var usesBLAS: Bool { override == .blas }

    // MARK: Ops

    /// y = act(conv(x, w) + bias). The direct kernels apply the activation to each tile of output rows
    /// right after it is stored (still in L1); the BLAS path folds it into its bias pass over y.
    func forward(x: UnsafePointer<Float>, w filter: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 y: UnsafeMutablePointer<Float>, activation: Activation) throws {
        let cin = shape.inChannels, cout = shape.outChannels
        if pixels == 0 || cout == 0 { return }
        let slope: Float? = activation.isIdentity ? nil : activation.alpha
        if cin == 0 || usesBLAS {
            try blasForward(x: x, filter: filter, bias: bias, y: y, slope: slope)
            return
        }
        try directProduct(input: x, inChannels: cin, outChannels: cout, bias: bias, output: y, filter: .hwio(filter),
                          slope: slope)
    }

    /// dx = input gradient of g = dy ⊙ act'(output).
    func backwardInput(dy: UnsafePointer<Float>, w filter: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                       activation: Activation, output: UnsafePointer<Float>?) throws {
        let cin = shape.inChannels, cout = shape.outChannels
        if pixels == 0 || cin == 0 { return }
        if cout == 0 {
            dx.update(repeating: 0, count: pixels * cin)
            return
        }
        if usesBLAS {
            try withMaskedGradient(dy, activation: activation, output: output, db: nil, accumulate: false) { g in
                try blasBackwardInput(dy: g, filter: filter, dx: dx)
            }
            return
        }
        // dx is the 'same' convolution of g with the filter flipped in space and with in/out swapped; the
        // mask is applied while g is copied into the zero-padded image the product reads anyway.
        let mask = activation.isIdentity ? nil : output.map { InputMask(output: $0, alpha: activation.alpha) }
        try directProduct(input: dy, inChannels: cout, outChannels: cin, bias: nil, output: dx,
                          filter: .flippedTransposed(filter), slope: nil, inputMask: mask)
    }

    /// dw (+)= filter gradient of (x, g) and db (+)= Σ_pixels g, with g = dy ⊙ act'(output).
    func backwardFilter(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dw: UnsafeMutablePointer<Float>,
                        db: UnsafeMutablePointer<Float>?, activation: Activation, output: UnsafePointer<Float>?,
                        accumulate: Bool) throws {
        let cin = shape.inChannels, cout = shape.outChannels
        let count = k * k * cin * cout
        if pixels == 0 {
            // Empty sums: zero, or nothing to add.
            if !accumulate {
                dw.update(repeating: 0, count: count)
                db?.update(repeating: 0, count: cout)
            }
            return
        }
        try withMaskedGradient(dy, activation: activation, output: output, db: db, accumulate: accumulate) { g in
            if count == 0 { return }
            if usesBLAS {
                try blasBackwardFilter(x: x, dy: g, dw: dw, accumulate: accumulate)
            } else if cout <= ConvolutionLimits.narrowChannels {
                try narrowFilterGradient(x: x, dy: g, dw: dw, accumulate: accumulate)
            } else {
                try directFilterGradient(x: x, dy: g, dw: dw, accumulate: accumulate)
            }
        }
    }

    // MARK: Fused activation

    /// Leaky ReLU in place on `rows` rows of `lanes` floats, `stride` apart (a tile just stored).
    @inline(__always)
    private func leakyRows(_ out: UnsafeMutablePointer<Float>, rows: Int, stride: Int, lanes: Int, alpha: Float) {
        for r in 0..<rows {
            let row = out + r * stride
            var c = 0
            while c + 16 <= lanes {
                var v = load(row + c)
                v.replace(with: alpha * v, where: .!(v .> 0))
                store(v, row + c, 16)
                c += 16
            }
            while c < lanes {
                let v = row[c]
                row[c] = v > 0 ? v : alpha * v
                c += 1
            }
        }
    }

    /// A leaky ReLU's gradient mask on a product's input: element e becomes output[e] > 0 ? v : alpha·v.
    struct InputMask {
        var output: UnsafePointer<Float>
        var alpha: Float
    }

    /// dst[e] = mask(src[e]) for e < count (src itself when `mask` is nil), `offset` the elements' position in
    /// the masked tensor.
    @inline(__always)
    private func copyMasked(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, count: Int, offset: Int,
                            _ mask: InputMask?) {
        guard let mask else {
            dst.update(from: src, count: count)
            return
        }
        let y = mask.output + offset, alpha = mask.alpha
        for e in 0..<count { dst[e] = y[e] > 0 ? src[e] : alpha * src[e] }
    }

    /// Runs `body` with g = dy ⊙ act'(output) (dy itself for the identity), and meanwhile sets db (+)= Σ_p g[p, :].
    /// Both come from one pass over dy in fixed pixel chunks (masked, then summed while in cache) whose column
    /// sums are added in chunk order, so db does not depend on the thread count.
    private func withMaskedGradient(_ dy: UnsafePointer<Float>, activation: Activation, output: UnsafePointer<Float>?,
                                    db: UnsafeMutablePointer<Float>?, accumulate: Bool,
                                    _ body: (UnsafePointer<Float>) throws -> Void) throws {
        let cout = shape.outChannels
        let masked = !activation.isIdentity
        if !masked && db == nil { return try body(dy) }
        precondition(!masked || output != nil, "a masked convolution gradient needs the saved output")
        let alpha = activation.alpha
        let chunk = ConvolutionLimits.filterChunkPixels
        let chunks = (pixels + chunk - 1) / chunk
        let partialCount = db == nil ? 0 : chunks * cout
        try scratch.withFloats((masked ? pixels * cout : 0) + partialCount) { floats in
            let g = masked ? UnsafePointer(floats) : dy
            let partial = floats + (masked ? pixels * cout : 0)
            parallel.forEach(chunks) { c in
                let first = c * chunk, last = min(pixels, first + chunk)
                if masked {
                    // The chunk's elements are contiguous: mask them 16 at a time whatever the channel count.
                    let y = output!
                    var e = first * cout
                    let end = last * cout
                    while e + 16 <= end {
                        var v = load(dy + e)
                        v.replace(with: alpha * v, where: .!(load(y + e) .> 0))
                        store(v, floats + e, 16)
                        e += 16
                    }
                    while e < end {
                        floats[e] = y[e] > 0 ? dy[e] : alpha * dy[e]
                        e += 1
                    }
                }
                if db != nil {
                    // Column sums of the chunk (still in cache), in registers: 16 channels at a time, then
                    // one at a time.
                    let sums = partial + c * cout
                    var c0 = 0
                    while c0 + 16 <= cout {
                        var acc = Vector()
                        for p in first..<last { acc += load(g + p * cout + c0) }
                        store(acc, sums + c0, 16)
                        c0 += 16
                    }
                    for co in c0..<cout {
                        var acc: Float = 0
                        for p in first..<last { acc += g[p * cout + co] }
                        sums[co] = acc
                    }
                }
            }
            if let db {
                for co in 0..<cout {
                    var s: Float = 0
                    for c in 0..<chunks { s += partial[c * cout + co] }
                    db[co] = accumulate ? db[co] + s : s
                }
            }
            try body(g)
        }
    }

    // MARK: Padded input

    /// Runs `body` with the input zero-padded by k/2 on every side ([n, h + 2p, w + 2p, c]); for k = 1
    /// that is the input itself. With a `mask` the copy is masked (for k = 1 too: then the copy is unpadded).
    private func withPadded<R>(_ input: UnsafePointer<Float>, channels c: Int, mask: InputMask? = nil,
                               _ body: (UnsafePointer<Float>) throws -> R) throws -> R {
        let pad = shape.pad
        if pad == 0 && mask == nil { return try body(input) }
        let ph = h + 2 * pad, pw = w + 2 * pad
        let rowFloats = pw * c
        return try scratch.withFloats(n * ph * rowFloats) { padded in
            let rows = n * ph
            parallel.chunks(rows, serialLimit: max(1, Parallel.serialLimit / max(rowFloats, 1)), align: 1) { range in
                for row in range {
                    let b = row / ph, i = row % ph - pad
                    let dst = padded + row * rowFloats
                    if i < 0 || i >= h {
                        dst.update(repeating: 0, count: rowFloats)
                    } else {
                        let offset = (b * h + i) * w * c
                        dst.update(repeating: 0, count: pad * c)
                        copyMasked(input + offset, dst + pad * c, count: w * c, offset: offset, mask)
                        (dst + (pad + w) * c).update(repeating: 0, count: pad * c)
                    }
                }
            }
            return try body(UnsafePointer(padded))
        }
    }

    /// Offsets into the padded input of the top-left tap of each output pixel in `range` (the window of
    /// output (b, i, j) starts at padded (b, i, j)).
    private func fillBases(_ bases: UnsafeMutablePointer<Int>, _ range: Range<Int>, channels c: Int) {
        let pad = shape.pad
        let ph = h + 2 * pad, pw = w + 2 * pad
        var p = range.lowerBound
        var b = p / (h * w), i = (p / w) % h, j = p % w
        var t = 0
        while p < range.upperBound {
            bases[t] = ((b * ph + i) * pw + j) * c
            t += 1
            p += 1
            j += 1
            if j == w {
                j = 0
                i += 1
                if i == h {
                    i = 0
                    b += 1
                }
            }
        }
    }

    // MARK: Direct forward-shaped product

    /// How `directProduct` reads its filter.
    private enum FilterLayout {
        /// weight(kk, co) = filter[kk·cout + co]: HWIO as given (the forward pass).
        case hwio(UnsafePointer<Float>)
        /// weight(tap'·cout + co, ci) = filter[((k·k − 1 − tap')·cin + ci)·cout + co]: the forward filter
        /// flipped in space with in/out swapped (the input gradient).
        case flippedTransposed(UnsafePointer<Float>)
    }

    /// out[p, co] = bias[co] + Σ_kk input-window(p)[kk] · weight(kk, co), the shared engine of the
    /// forward pass and the input gradient.
    /// `slope`: the leaky ReLU applied to each tile right after it is stored (nil: none); `inputMask`: the
    /// leaky ReLU gradient mask applied to the input as it is copied into the padded image.
    private func directProduct(input: UnsafePointer<Float>, inChannels cin: Int, outChannels cout: Int,
                               bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>,
                               filter: FilterLayout, slope: Float?, inputMask: InputMask? = nil) throws {
        if cout <= ConvolutionLimits.narrowChannels {
            try narrowProduct(input: input, inChannels: cin, outChannels: cout, bias: bias, output: output,
                              filter: filter, slope: slope, inputMask: inputMask)
            return
        }
        let kk = k * k * cin
        let tuning = ConvTuning.shared
        let blocks = LaneBlocks(channels: cout, allowWide: tuning.forward32 != nil)
        let padded = blocks.paddedChannels
        // A forward filter whose channel count is a multiple of 16 is read in place (rows of `cout`
        // floats); otherwise it is packed per lane block as [kk][width], zero past the last channel.
        var inPlace: UnsafePointer<Float>?
        if case let .hwio(f) = filter, cout == padded { inPlace = f }
        let packCount = inPlace == nil ? kk * padded : 0
        try scratch.withFloats(packCount + padded) { scratchFloats in
            let packedBias = scratchFloats + packCount
            for c in 0..<padded { packedBias[c] = c < cout ? (bias?[c] ?? 0) : 0 }
            if inPlace == nil { pack(filter, kk: kk, cin: cin, cout: cout, blocks: blocks, into: scratchFloats) }
            func weights(_ block: LaneBlocks.Block) -> (UnsafePointer<Float>, Int) {
                if let inPlace { return (inPlace + block.start, cout) }
                return (UnsafePointer(scratchFloats + kk * block.start), block.width)
            }
            try withPadded(input, channels: cin, mask: inputMask) { xp in
                let pw = w + 2 * shape.pad

                // Items: (lane block, pixel chunk), enough of them to balance the workers; chunks are
                // whole tiles of every shape and at most ~1500 pixels (the input rows stay in L2).
                let unit = TileShape.rowsMultiple
                let units = (pixels + unit - 1) / unit
                let wanted = max(1, (parallel.threads * 8 + blocks.all.count - 1) / blocks.all.count)
                let chunkUnits = max(1, min((units + wanted - 1) / wanted, 64))
                let chunk = chunkUnits * unit
                let chunks = (units + chunkUnits - 1) / chunkUnits
                parallel.forEach(blocks.all.count * chunks) { item in
                    let block = blocks.all[item / chunks]
                    let tile = block.width == 32 ? tuning.forward32! : tuning.forward16
                    let first = (item % chunks) * chunk
                    let last = min(pixels, first + chunk)
                    withUnsafeTemporaryAllocation(of: Int.self, capacity: chunk + unit) { bases in
                        let b = bases.baseAddress!
                        fillBases(b, first..<last, channels: cin)
                        // The last tile may be short: repeat the last pixel (those results are not stored).
                        for t in (last - first)..<(chunk + unit) { b[t] = b[last - first - 1] }
                        let (blockWeights, weightStride) = weights(block)
                        let geometry = TileGeometry(rows: k, rowStride: pw * cin, segment: k * cin, outStride: cout,
                                                    weightStride: weightStride)
                        let biasVector = UnsafePointer(packedBias + block.start)
                        let lanes = min(block.width, cout - block.start)
                        var p = first
                        while p < last {
                            let rows = min(tile.rows, last - p)
                            ConvTiles.forward(tile, xp, b + (p - first), geometry, blockWeights, biasVector,
                                              output + p * cout + block.start, rows, lanes)
                            if let slope {
                                leakyRows(output + p * cout + block.start, rows: rows, stride: cout, lanes: lanes,
                                          alpha: slope)
                            }
                            p += tile.rows
                        }
                    }
                }
            }
        }
    }

    /// weight(row, co) of the product (see `FilterLayout`); `cin`/`cout` are the product's channels.
    private func weight(_ filter: FilterLayout, _ row: Int, _ co: Int, cin: Int, cout: Int) -> Float {
        switch filter {
        case let .hwio(f):
            return f[row * cout + co]
        case let .flippedTransposed(f):
            let tapOut = row / cin, j = row % cin
            return f[((k * k - 1 - tapOut) * cout + co) * cin + j]
        }
    }

    /// The product for at most `narrowChannels` outputs (a decoder's last layer: 1 or 3 colours), where a
    /// 16-lane output tile would be mostly padding: one dot product per output, its lanes running along
    /// the contiguous k·cin inputs of a kernel row, four outputs sharing each input load.
    private func narrowProduct(input: UnsafePointer<Float>, inChannels cin: Int, outChannels cout: Int,
                               bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>,
                               filter: FilterLayout, slope: Float?, inputMask: InputMask?) throws {
        let segment = k * cin, kk = k * segment, lanes = ConvolutionLimits.narrowChannels
        // transposed[co][row] = weight(row, co), zero rows past `cout`.
        try scratch.withFloats(lanes * kk) { transposed in
            for co in 0..<lanes {
                for row in 0..<kk {
                    transposed[co * kk + row] = co < cout ? weight(filter, row, co, cin: cin, cout: cout) : 0
                }
            }
            func biasAt(_ co: Int) -> Float { co < cout ? (bias?[co] ?? 0) : 0 }
            let b0 = biasAt(0), b1 = biasAt(1), b2 = biasAt(2), b3 = biasAt(3)
            try withPadded(input, channels: cin, mask: inputMask) { xp in
                let rowStride = (w + 2 * shape.pad) * cin
                let chunk = ConvolutionLimits.filterChunkPixels
                parallel.forEach((pixels + chunk - 1) / chunk) { c in
                    let first = c * chunk, count = min(chunk, pixels - first)
                    withUnsafeTemporaryAllocation(of: Int.self, capacity: chunk) { bases in
                        let b = bases.baseAddress!
                        fillBases(b, first..<(first + count), channels: cin)
                        // One output channel (a decoder's grey output): four pixels at a time share each weight
                        // load; each pixel's sum runs in the same order as in the loop below.
                        var t = 0
                        while cout == 1 && t + 4 <= count {
                            var a0 = Vector(), a1 = Vector(), a2 = Vector(), a3 = Vector()
                            var t0: Float = 0, t1: Float = 0, t2: Float = 0, t3: Float = 0
                            for kh in 0..<k {
                                let o = kh * rowStride
                                let x0 = xp + b[t] + o, x1 = xp + b[t + 1] + o, x2 = xp + b[t + 2] + o
                                let x3 = xp + b[t + 3] + o
                                let w0 = UnsafePointer(transposed + kh * segment)
                                var q = 0
                                while q + 16 <= segment {
                                    let wv = load(w0 + q)
                                    a0 += load(x0 + q) * wv
                                    a1 += load(x1 + q) * wv
                                    a2 += load(x2 + q) * wv
                                    a3 += load(x3 + q) * wv
                                    q += 16
                                }
                                while q < segment {
                                    let ws = w0[q]
                                    t0 += x0[q] * ws
                                    t1 += x1[q] * ws
                                    t2 += x2[q] * ws
                                    t3 += x3[q] * ws
                                    q += 1
                                }
                            }
                            let out = output + first + t
                            out[0] = b0 + (horizontalSum(a0) + t0)
                            out[1] = b0 + (horizontalSum(a1) + t1)
                            out[2] = b0 + (horizontalSum(a2) + t2)
                            out[3] = b0 + (horizontalSum(a3) + t3)
                            t += 4
                        }
                        for t in t..<count {
                            var a0 = Vector(), a1 = Vector(), a2 = Vector(), a3 = Vector()
                            var t0: Float = 0, t1: Float = 0, t2: Float = 0, t3: Float = 0
                            for kh in 0..<k {
                                let xr = xp + b[t] + kh * rowStride
                                let w0 = UnsafePointer(transposed + kh * segment)
                                let w1 = w0 + kk, w2 = w1 + kk, w3 = w2 + kk
                                var q = 0
                                while q + 16 <= segment {
                                    let xv = load(xr + q)
                                    a0 += xv * load(w0 + q)
                                    a1 += xv * load(w1 + q)
                                    a2 += xv * load(w2 + q)
                                    a3 += xv * load(w3 + q)
                                    q += 16
                                }
                                while q < segment {
                                    let xs = xr[q]
                                    t0 += xs * w0[q]
                                    t1 += xs * w1[q]
                                    t2 += xs * w2[q]
                                    t3 += xs * w3[q]
                                    q += 1
                                }
                            }
                            let out = output + (first + t) * cout
                            out[0] = b0 + (horizontalSum(a0) + t0)
                            if cout > 1 { out[1] = b1 + (horizontalSum(a1) + t1) }
                            if cout > 2 { out[2] = b2 + (horizontalSum(a2) + t2) }
                            if cout > 3 { out[3] = b3 + (horizontalSum(a3) + t3) }
                        }
                        // The chunk's outputs are still in L1.
                        if let slope {
                            leakyRows(output + first * cout, rows: 1, stride: 0, lanes: count * cout, alpha: slope)
                        }
                    }
                }
            }
        }
    }

    /// Packs the filter per lane block as [kk][width] (zero past `cout`); `cin`/`cout` are the
    /// product's input and output channels.
    private func pack(_ filter: FilterLayout, kk: Int, cin: Int, cout: Int, blocks: LaneBlocks,
                      into packed: UnsafeMutablePointer<Float>) {
        switch filter {
        case let .hwio(f):
            parallel.chunks(kk, serialLimit: max(1, Parallel.serialLimit / blocks.paddedChannels), align: 1) { range in
                for block in blocks.all {
                    let lanes = min(block.width, cout - block.start)
                    for row in range {
                        let dst = packed + kk * block.start + row * block.width
                        dst.update(from: f + row * cout + block.start, count: lanes)
                        (dst + lanes).update(repeating: 0, count: block.width - lanes)
                    }
                }
            }
        case let .flippedTransposed(f):
            // The product's input channels (`cin`) are the forward filter's outputs and its output lanes
            // (`cout`) the forward inputs: packed[block][tap'·cin + j][lane] =
            // f[((taps − 1 − tap')·cout + block.start + lane)·cin + j], a transpose of each tap.
            let taps = k * k
            parallel.forEach(taps * blocks.all.count) { item in
                let tapOut = item / blocks.all.count, block = blocks.all[item % blocks.all.count]
                let dst = packed + kk * block.start + tapOut * cin * block.width
                let tapIn = taps - 1 - tapOut
                for lane in 0..<block.width {
                    let forwardInput = block.start + lane
                    if forwardInput >= cout {
                        for j in 0..<cin { dst[j * block.width + lane] = 0 }
                        continue
                    }
                    let src = f + (tapIn * cout + forwardInput) * cin
                    for j in 0..<cin { dst[j * block.width + lane] = src[j] }
                }
            }
        }
    }

    // MARK: Direct filter gradient

    /// dw[kh, q, co] = Σ_p padded-x[base(p) + kh·rowStride + q] · dy[p, co], q = kw·cin + ci.
    private func directFilterGradient(x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                      dw: UnsafeMutablePointer<Float>, accumulate: Bool) throws {
        let cin = shape.inChannels, cout = shape.outChannels
        let segment = k * cin, kk = k * segment
        let tuning = ConvTuning.shared
        let blocks = LaneBlocks(channels: cout, allowWide: tuning.filter32 != nil)
        let padded = blocks.paddedChannels
        let chunk = ConvolutionLimits.filterChunkPixels
        // Work split: over outputs (kernel row × lane block × product range) and over pixel groups whose
        // private partial sums are added in a fixed order at the end. The number of groups depends only
        // on the shape (never on threads or tiles), so the sums are always grouped the same way.
        let narrowRows = k * ((cout + 15) / 16)
        let target = ConvolutionLimits.filterItems
        let maxGroups = max(1, min(pixels / (4 * chunk), ConvolutionLimits.partialFloats / max(kk * padded, 1)))
        let groups = narrowRows >= target ? 1 : min(maxGroups, (target + narrowRows - 1) / narrowRows)
        let pixelsPerGroup = ((pixels + groups - 1) / groups + chunk - 1) / chunk * chunk
        let rowBlocks = k * blocks.all.count
        let qSplits = max(1, min(segment / 8, (target + rowBlocks * groups - 1) / (rowBlocks * groups)))
        let qPerSplit = ((segment + qSplits - 1) / qSplits + 7) / 8 * 8

        // dy with its channels padded to whole lane blocks, unless they already are.
        let dyCopyCount = padded == cout ? 0 : pixels * padded
        try scratch.withFloats(dyCopyCount) { dyCopy in
            let dyp: UnsafePointer<Float>
            if dyCopyCount > 0 {
                parallel.chunks(pixels, serialLimit: max(1, Parallel.serialLimit / padded), align: 1) { range in
                    for p in range {
                        (dyCopy + p * padded).update(from: dy + p * cout, count: cout)
                        (dyCopy + p * padded + cout).update(repeating: 0, count: padded - cout)
                    }
                }
                dyp = UnsafePointer(dyCopy)
            } else {
                dyp = dy
            }
            try scratch.withZeroedFloats(groups * kk * padded) { partial in
                try withPadded(x, channels: cin) { xp in
                    let rowStride = (w + 2 * shape.pad) * cin
                    let outputItems = rowBlocks * qSplits
                    parallel.forEach(groups * outputItems) { item in
                        let g = item / outputItems, o = item % outputItems
                        let kh = o / (blocks.all.count * qSplits)
                        let block = blocks.all[(o / qSplits) % blocks.all.count]
                        let tile = block.width == 32 ? tuning.filter32! : tuning.filter16
                        let qLo = (o % qSplits) * qPerSplit, qHi = min(segment, qLo + qPerSplit)
                        if qLo >= qHi { return }
                        let acc = partial + g * kk * padded + kh * segment * padded + block.start
                        let pLo = g * pixelsPerGroup, pHi = min(pixels, pLo + pixelsPerGroup)
                        withUnsafeTemporaryAllocation(of: Int.self, capacity: chunk) { bases in
                            let b = bases.baseAddress!
                            var p = pLo
                            while p < pHi {
                                // Sum this chunk of pixels into every product of the item, then move on:
                                // the chunk's dy rows and input stay in cache across the products.
                                let count = min(chunk, pHi - p)
                                fillBases(b, p..<(p + count), channels: cin)
                                let dyChunk = dyp + p * padded + block.start
                                var q = qLo
                                while q < qHi {
                                    let span = min(tile.rows, qHi - q)
                                    ConvTiles.filter(tile, xp, b, count, kh * rowStride + q, dyChunk, padded,
                                                     acc + q * padded, padded, span)
                                    q += span
                                }
                                p += count
                            }
                        }
                    }
                }
                // dw (+)= Σ_g partial[g] (in order), dropping the padding lanes.
                parallel.chunks(kk, serialLimit: max(1, Parallel.serialLimit / max(padded * groups, 1)), align: 1) { range in
                    for row in range {
                        let dst = dw + row * cout
                        let src = partial + row * padded
                        if groups > 1 {
                            for g in 1..<groups {
                                let s = src + g * kk * padded
                                for c in 0..<cout { src[c] += s[c] }
                            }
                        }
                        if accumulate {
                            for c in 0..<cout { dst[c] += src[c] }
                        } else {
                            dst.update(from: src, count: cout)
                        }
                    }
                }
            }
        }
    }

    /// The filter gradient for at most `narrowChannels` outputs: lanes along 16 contiguous inputs q of a
    /// kernel row, one accumulator per output channel (dy padded to 4 channels). Items are pixel groups
    /// (a shape-determined count); each sums its chunks into every product, and the groups' partial sums
    /// are added in order.
    private func narrowFilterGradient(x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                      dw: UnsafeMutablePointer<Float>, accumulate: Bool) throws {
        let cin = shape.inChannels, cout = shape.outChannels
        let segment = k * cin, kk = k * segment, lanes = ConvolutionLimits.narrowChannels
        let chunk = ConvolutionLimits.filterChunkPixels
        let maxGroups = max(1, min(pixels / (4 * chunk), ConvolutionLimits.partialFloats / max(kk * lanes, 1)))
        let groups = min(maxGroups, ConvolutionLimits.filterItems)
        let pixelsPerGroup = ((pixels + groups - 1) / groups + chunk - 1) / chunk * chunk
        // dy padded to 4 channels (one channel is read in place).
        try scratch.withFloats(cout == 1 ? 0 : pixels * lanes) { dy4 in
            if cout > 1 {
                parallel.chunks(pixels, serialLimit: Parallel.serialLimit / lanes, align: 1) { range in
                    for p in range {
                        for c in 0..<lanes { dy4[p * lanes + c] = c < cout ? dy[p * cout + c] : 0 }
                    }
                }
            }
            try scratch.withZeroedFloats(groups * kk * lanes) { partial in
                try withPadded(x, channels: cin) { xp in
                    let rowStride = (w + 2 * shape.pad) * cin
                    parallel.forEach(groups) { g in
                        let pLo = g * pixelsPerGroup, pHi = min(pixels, pLo + pixelsPerGroup)
                        withUnsafeTemporaryAllocation(of: Int.self, capacity: chunk) { bases in
                            let b = bases.baseAddress!
                            var p = pLo
                            while p < pHi {
                                let count = min(chunk, pHi - p)
                                fillBases(b, p..<(p + count), channels: cin)
                                for kh in 0..<k {
                                    let acc = partial + (g * kk + kh * segment) * lanes
                                    if cout == 1 {
                                        narrowFilterRow1(xp, b, count, kh * rowStride, segment, dy + p, acc)
                                    } else {
                                        narrowFilterRow(xp, b, count, kh * rowStride, segment,
                                                        UnsafePointer(dy4 + p * lanes), acc)
                                    }
                                }
                                p += count
                            }
                        }
                    }
                }
                for row in 0..<kk {
                    for c in 0..<cout {
                        var s = partial[row * lanes + c]
                        for g in 1..<max(groups, 1) { s += partial[(g * kk + row) * lanes + c] }
                        dw[row * cout + c] = accumulate ? dw[row * cout + c] + s : s
                    }
                }
            }
        }
    }

    /// acc[q][0] += Σ_t x[bases[t] + offset + q] · d[t] for one kernel row and one output channel: four sums
    /// over interleaved pixels (one chain would wait on every multiply-add), added in a fixed order.
    @inline(__always)
    private func narrowFilterRow1(_ xp: UnsafePointer<Float>, _ b: UnsafePointer<Int>, _ count: Int, _ offset: Int,
                                  _ segment: Int, _ d: UnsafePointer<Float>, _ acc: UnsafeMutablePointer<Float>) {
        let lanes = ConvolutionLimits.narrowChannels
        var q0 = 0
        while q0 + 16 <= segment {
            var a0 = Vector(), a1 = Vector(), a2 = Vector(), a3 = Vector()
            var t = 0
            while t + 4 <= count {
                a0.addProduct(d[t], load(xp + b[t] + offset + q0))
                a1.addProduct(d[t + 1], load(xp + b[t + 1] + offset + q0))
                a2.addProduct(d[t + 2], load(xp + b[t + 2] + offset + q0))
                a3.addProduct(d[t + 3], load(xp + b[t + 3] + offset + q0))
                t += 4
            }
            while t < count {
                a0.addProduct(d[t], load(xp + b[t] + offset + q0))
                t += 1
            }
            let sum = (a0 + a1) + (a2 + a3)
            for l in 0..<16 { acc[(q0 + l) * lanes] += sum[l] }
            q0 += 16
        }
        for q in q0..<segment {
            var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
            var t = 0
            while t + 4 <= count {
                s0 += xp[b[t] + offset + q] * d[t]
                s1 += xp[b[t + 1] + offset + q] * d[t + 1]
                s2 += xp[b[t + 2] + offset + q] * d[t + 2]
                s3 += xp[b[t + 3] + offset + q] * d[t + 3]
                t += 4
            }
            while t < count {
                s0 += xp[b[t] + offset + q] * d[t]
                t += 1
            }
            acc[q * lanes] += (s0 + s1) + (s2 + s3)
        }
    }

    /// acc[q][c] += Σ_t x[bases[t] + offset + q] · d[t][c] for one kernel row (q < segment, c < 4).
    @inline(__always)
    private func narrowFilterRow(_ xp: UnsafePointer<Float>, _ b: UnsafePointer<Int>, _ count: Int, _ offset: Int,
                                 _ segment: Int, _ d: UnsafePointer<Float>, _ acc: UnsafeMutablePointer<Float>) {
        var q0 = 0
        while q0 + 16 <= segment {
            var a0 = Vector(), a1 = Vector(), a2 = Vector(), a3 = Vector()
            for t in 0..<count {
                let xv = load(xp + b[t] + offset + q0)
                let dt = d + 4 * t
                a0 += xv * dt[0]
                a1 += xv * dt[1]
                a2 += xv * dt[2]
                a3 += xv * dt[3]
            }
            for l in 0..<16 {
                let row = acc + (q0 + l) * 4
                row[0] += a0[l]
                row[1] += a1[l]
                row[2] += a2[l]
                row[3] += a3[l]
            }
            q0 += 16
        }
        for q in q0..<segment {
            var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
            for t in 0..<count {
                let xs = xp[b[t] + offset + q]
                let dt = d + 4 * t
                s0 += xs * dt[0]
                s1 += xs * dt[1]
                s2 += xs * dt[2]
                s3 += xs * dt[3]
            }
            let row = acc + q * 4
            row[0] += s0
            row[1] += s1
            row[2] += s2
            row[3] += s3
        }
    }

    // MARK: im2col + OpenBLAS

    /// Images per im2col tile: about 8 MiB of columns, at least one image.
    private func imagesPerTile(columns: Int) -> Int {
        max(1, min(n, (2 << 20) / max(h * w * columns, 1)))
    }

    /// col[p - first, (kh·k + kw)·c + ci] = x[pixel p shifted by (kh − pad, kw − pad), ci], or 0 outside.
    private func im2col(_ x: UnsafePointer<Float>, channels c: Int, images: Range<Int>, into col: UnsafeMutablePointer<Float>) {
        let pad = shape.pad, columns = k * k * c
        let first = images.lowerBound * h * w
        let count = images.count * h * w
        parallel.chunks(count, serialLimit: max(1, Parallel.serialLimit / columns), align: 1) { range in
            for local in range {
                let p = first + local
                let b = p / (h * w), i = (p / w) % h, j = p % w
                let row = col + local * columns
                for kh in 0..<k {
                    for kw in 0..<k {
                        let dst = row + (kh * k + kw) * c
                        let si = i + kh - pad, sj = j + kw - pad
                        if si < 0 || si >= h || sj < 0 || sj >= w {
                            dst.update(repeating: 0, count: c)
                        } else {
                            dst.update(from: x + ((b * h + si) * w + sj) * c, count: c)
                        }
                    }
                }
            }
        }
    }

    private func blasForward(x: UnsafePointer<Float>, filter: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                             y: UnsafeMutablePointer<Float>, slope: Float?) throws {
        let cin = shape.inChannels, cout = shape.outChannels, kk = k * k * cin
        if kk == 0 {
            for p in 0..<pixels {
                for c in 0..<cout {
                    let v = bias?[c] ?? 0
                    y[p * cout + c] = slope.map { v > 0 ? v : $0 * v } ?? v
                }
            }
            return
        }
        if k == 1 {
            CPUGemm.sgemm(x, filter, y, m: pixels, n: cout, k: cin)
        } else {
            let per = imagesPerTile(columns: kk)
            try scratch.withFloats(per * h * w * kk) { col in
                var b = 0
                while b < n {
                    let images = b..<min(n, b + per)
                    im2col(x, channels: cin, images: images, into: col)
                    CPUGemm.sgemm(col, filter, y + b * h * w * cout, m: images.count * h * w, n: cout, k: kk)
                    b = images.upperBound
                }
            }
        }
        // The epilogue: one pass over y for the bias and the activation together.
        if bias != nil || slope != nil {
            parallel.chunks(pixels, serialLimit: max(1, Parallel.serialLimit / cout), align: 1) { range in
                for p in range {
                    let row = y + p * cout
                    if let bias { for c in 0..<cout { row[c] += bias[c] } }
                    if let slope { leakyRows(row, rows: 1, stride: cout, lanes: cout, alpha: slope) }
                }
            }
        }
    }

    private func blasBackwardInput(dy: UnsafePointer<Float>, filter: UnsafePointer<Float>,
                                   dx: UnsafeMutablePointer<Float>) throws {
        let cin = shape.inChannels, cout = shape.outChannels, kk = k * k * cin
        if k == 1 {
            // dx = dy · Wᵀ with W stored [cin, cout].
            CPUGemm.sgemm(dy, filter, dx, m: pixels, n: cin, k: cout, transB: true)
            return
        }
        let per = imagesPerTile(columns: kk)
        let pad = shape.pad
        try scratch.withFloats(per * h * w * kk) { dcol in
            var b0 = 0
            while b0 < n {
                let images = b0..<min(n, b0 + per)
                let first = images.lowerBound * h * w
                CPUGemm.sgemm(dy + first * cout, filter, dcol, m: images.count * h * w, n: kk, k: cout, transB: true)
                // col2im as a gather: each dx pixel sums the columns that read it (no write conflicts).
                let count = images.count * h * w
                parallel.chunks(count, serialLimit: max(1, Parallel.serialLimit / kk), align: 1) { range in
                    for local in range {
                        let p = first + local
                        let b = p / (h * w), i = (p / w) % h, j = p % w
                        let dst = dx + p * cin
                        dst.update(repeating: 0, count: cin)
                        for kh in 0..<k {
                            for kw in 0..<k {
                                // Output pixel (i + pad − kh, j + pad − kw) read this one through tap (kh, kw).
                                let oi = i + pad - kh, oj = j + pad - kw
                                if oi < 0 || oi >= h || oj < 0 || oj >= w { continue }
                                let src = dcol + (((b * h + oi) * w + oj) - first) * kk + (kh * k + kw) * cin
                                for c in 0..<cin { dst[c] += src[c] }
                            }
                        }
                    }
                }
                b0 = images.upperBound
            }
        }
    }

    private func blasBackwardFilter(x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                    dw: UnsafeMutablePointer<Float>, accumulate: Bool) throws {
        let cin = shape.inChannels, cout = shape.outChannels, kk = k * k * cin
        if k == 1 {
            // dW (+)= xᵀ · dy.
            CPUGemm.sgemm(x, dy, dw, m: cin, n: cout, k: pixels, transA: true, beta: accumulate ? 1 : 0)
            return
        }
        let per = imagesPerTile(columns: kk)
        try scratch.withFloats(per * h * w * kk) { col in
            var b = 0
            while b < n {
                let images = b..<min(n, b + per)
                im2col(x, channels: cin, images: images, into: col)
                // dW (+)= colᵀ · dy, accumulating over tiles.
                CPUGemm.sgemm(col, dy + b * h * w * cout, dw, m: kk, n: cout, k: images.count * h * w,
                              transA: true, beta: b == 0 && !accumulate ? 0 : 1)
                b = images.upperBound
            }
        }
    }
}

/// Work-split constants of the direct filter gradient. They fix how partial sums are grouped, so they
/// must not depend on the machine.
enum ConvolutionLimits {
    /// Pixels summed in registers before the tile adds its sums to memory.
    static let filterChunkPixels = 256
    /// Work items the filter gradient aims for (enough to balance a few workers).
    static let filterItems = 16
    /// Largest total size of the per-group partial filter gradients.
    static let partialFloats = 4 << 20
    /// Output channel counts up to this use the dot-product kernels instead of 16-lane tiles (those
    /// kernels hold exactly four accumulators).
    static let narrowChannels = 4
}
