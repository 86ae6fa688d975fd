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
/// after paying for a 9× im2col copy. The direct kernels here keep a tile of R pixels × L output
/// channels in SIMD registers and stream the K = k·k·cin products through it, reading the padded input
/// in place: for a kernel row kh, the (kw, ci) inputs of a pixel are one contiguous run of k·cin floats,
/// and so are the matching filter rows. Accumulation order is fixed (kh, then kw·cin + ci), so results
/// do not depend on the tiling or the thread count.
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

    private var algorithm: ConvAlgorithm { override ?? .direct }

    // MARK: Ops

    func forward(x: UnsafePointer<Float>, w filter: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 y: UnsafeMutablePointer<Float>) throws {
        let cin = shape.inChannels, cout = shape.outChannels
        if pixels == 0 || cout == 0 { return }
        if cin == 0 || algorithm == .blas {
            try blasForward(x: x, filter: filter, bias: bias, y: y)
            return
        }
        // Filter element (kk, co) with kk = (kh·k + kw)·cin + ci is filter[kk·cout + co] (HWIO).
        try directProduct(input: x, inChannels: cin, outChannels: cout, bias: bias, output: y) { kk, co in
            filter[kk * cout + co]
        }
    }

    func backwardInput(dy: UnsafePointer<Float>, w filter: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>) throws {
        let cin = shape.inChannels, cout = shape.outChannels
        if pixels == 0 || cin == 0 { return }
        if cout == 0 {
            dx.update(repeating: 0, count: pixels * cin)
            return
        }
        if algorithm == .blas {
            try blasBackwardInput(dy: dy, filter: filter, dx: dx)
            return
        }
        // dx is the 'same' convolution of dy with the filter flipped in space and with in/out swapped:
        // filter'[tap'][co][ci] = filter[k·k − 1 − tap'][ci][co].
        let taps = k * k
        try directProduct(input: dy, inChannels: cout, outChannels: cin, bias: nil, output: dx) { kk, ci in
            let tap = taps - 1 - kk / cout, co = kk % cout
            return filter[(tap * cin + ci) * cout + co]
        }
    }

    func backwardFilter(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dw: UnsafeMutablePointer<Float>) throws {
        let cin = shape.inChannels, cout = shape.outChannels
        let count = k * k * cin * cout
        if count == 0 { return }
        if pixels == 0 {
            dw.update(repeating: 0, count: count)
            return
        }
        if algorithm == .blas {
            try blasBackwardFilter(x: x, dy: dy, dw: dw)
            return
        }
        try directFilterGradient(x: x, dy: dy, dw: dw)
    }

    // MARK: Padded input

    /// Runs `body` with the input zero-padded by k/2 on every side ([n, h + 2p, w + 2p, c]); for k = 1
    /// that is the input itself.
    private func withPadded<R>(_ input: UnsafePointer<Float>, channels c: Int,
                               _ body: (UnsafePointer<Float>) throws -> R) throws -> R {
        let pad = shape.pad
        if pad == 0 { return try body(input) }
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
                        dst.update(repeating: 0, count: pad * c)
                        (dst + pad * c).update(from: input + (b * h + i) * w * c, count: w * c)
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

    /// out[p, co] = bias[co] + Σ_kk input-window(p)[kk] · weight(kk, co), the shared engine of the
    /// forward pass and the input gradient.
    private func directProduct(input: UnsafePointer<Float>, inChannels cin: Int, outChannels cout: Int,
                               bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>,
                               weight: (Int, Int) -> Float) throws {
        let kk = k * k * cin
        let blocks = LaneBlocks(channels: cout)
        let padded = blocks.paddedChannels
        // Packed filter: for each lane block, [kk][lanes] contiguous with zeros past `cout`, so the tile
        // loop reads one vector per product.
        try scratch.withFloats(kk * padded + padded) { packed in
            let packedBias = packed + kk * padded
            for c in 0..<padded { packedBias[c] = c < cout ? (bias?[c] ?? 0) : 0 }
            parallel.chunks(kk, serialLimit: max(1, 8192 / padded), align: 1) { range in
                for block in blocks.all {
                    let dst = packed + kk * block.start
                    for row in range {
                        for l in 0..<block.width {
                            let co = block.start + l
                            dst[row * block.width + l] = co < cout ? weight(row, co) : 0
                        }
                    }
                }
            }
            try withPadded(input, channels: cin) { xp in
                let pw = w + 2 * shape.pad
                let geometry = TileGeometry(rows: k, rowStride: pw * cin, segment: k * cin, outStride: cout)
                let tile = ForwardTile.pixels
                // Items: (lane block, pixel chunk). Chunks are whole tiles; enough items to balance.
                let tiles = (pixels + tile - 1) / tile
                let wanted = max(1, parallel.threads * 8 / blocks.all.count)
                let chunkTiles = max(1, min((tiles + wanted - 1) / wanted, 4096 / tile))
                let chunks = (tiles + chunkTiles - 1) / chunkTiles
                parallel.forEach(blocks.all.count * chunks) { item in
                    let block = blocks.all[item / chunks]
                    let first = (item % chunks) * chunkTiles * tile
                    let last = min(pixels, first + chunkTiles * tile)
                    withUnsafeTemporaryAllocation(of: Int.self, capacity: chunkTiles * tile) { bases in
                        let b = bases.baseAddress!
                        fillBases(b, first..<last, channels: cin)
                        // The last tile may be short: repeat its last pixel (results are not stored).
                        for t in (last - first)..<(chunkTiles * tile) { b[t] = b[last - first - 1] }
                        let weights = UnsafePointer(packed + kk * block.start)
                        let biasVector = UnsafePointer(packedBias + block.start)
                        let lanes = min(block.width, cout - block.start)
                        var p = first
                        while p < last {
                            let count = min(tile, last - p)
                            let out = output + p * cout + block.start
                            let bp = UnsafePointer(b + (p - first))
                            switch block.width {
                            case 64: ForwardTile.run(SIMD64<Float>.self, xp, bp, geometry, weights, biasVector, out, count, lanes)
                            case 32: ForwardTile.run(SIMD32<Float>.self, xp, bp, geometry, weights, biasVector, out, count, lanes)
                            default: ForwardTile.run(SIMD16<Float>.self, xp, bp, geometry, weights, biasVector, out, count, lanes)
                            }
                            p += tile
                        }
                    }
                }
            }
        }
    }

    // MARK: Direct filter gradient

    /// dw[kh, q, co] = Σ_p padded-x[base(p) + kh·rowStride + q] · dy[p, co], q = kw·cin + ci.
    private func directFilterGradient(x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                      dw: UnsafeMutablePointer<Float>) throws {
        let cin = shape.inChannels, cout = shape.outChannels
        let segment = k * cin, kk = k * segment
        let blocks = LaneBlocks(channels: cout)
        let padded = blocks.paddedChannels
        // Work split: first over outputs (kernel row × lane block × q-range), then, if that gives too few
        // items, over pixel groups with private partial sums added in a fixed order at the end.
        let target = parallel.threads > 1 ? parallel.threads * 4 : 1
        let rowBlocks = k * blocks.all.count
        let chunk = FilterTile.chunkPixels
        let maxGroups = max(1, min(pixels / chunk, (4 << 20) / max(kk * padded, 1)))
        let groups = rowBlocks >= target ? 1 : min(maxGroups, (target + rowBlocks - 1) / rowBlocks)
        let qSplits = max(1, min(segment / FilterTile.qBlock, (target + rowBlocks * groups - 1) / (rowBlocks * groups)))
        let qPerSplit = ((segment + qSplits - 1) / qSplits + FilterTile.qBlock - 1) / FilterTile.qBlock * FilterTile.qBlock
        let pixelsPerGroup = ((pixels + groups - 1) / groups + chunk - 1) / chunk * chunk

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
                        let qLo = (o % qSplits) * qPerSplit, qHi = min(segment, qLo + qPerSplit)
                        if qLo >= qHi { return }
                        let acc = partial + g * kk * padded + kh * segment * padded + block.start
                        let pLo = g * pixelsPerGroup, pHi = min(pixels, pLo + pixelsPerGroup)
                        withUnsafeTemporaryAllocation(of: Int.self, capacity: chunk) { bases in
                            let b = bases.baseAddress!
                            var p = pLo
                            while p < pHi {
                                let count = min(chunk, pHi - p)
                                fillBases(b, p..<(p + count), channels: cin)
                                let dyChunk = dyp + p * padded + block.start
                                var q = qLo
                                while q < qHi {
                                    let span = min(FilterTile.qBlock, qHi - q)
                                    let offset = kh * rowStride + q
                                    let dst = acc + q * padded
                                    switch block.width {
                                    case 64: FilterTile.run(SIMD64<Float>.self, xp, b, count, offset, dyChunk, padded, dst, padded, span)
                                    case 32: FilterTile.run(SIMD32<Float>.self, xp, b, count, offset, dyChunk, padded, dst, padded, span)
                                    default: FilterTile.run(SIMD16<Float>.self, xp, b, count, offset, dyChunk, padded, dst, padded, span)
                                    }
                                    q += span
                                }
                                p += count
                            }
                        }
                    }
                }
                // dw = Σ_g partial[g] (in order), dropping the padding lanes.
                parallel.chunks(kk, serialLimit: max(1, Parallel.serialLimit / max(padded * groups, 1)), align: 1) { range in
                    for row in range {
                        let dst = dw + row * cout
                        let src = partial + row * padded
                        dst.update(from: src, count: cout)
                        for g in 1..<max(groups, 1) {
                            let s = src + g * kk * padded
                            for c in 0..<cout { dst[c] += s[c] }
                        }
                    }
                }
            }
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
                             y: UnsafeMutablePointer<Float>) throws {
        let cin = shape.inChannels, cout = shape.outChannels, kk = k * k * cin
        if kk == 0 {
            for p in 0..<pixels { for c in 0..<cout { y[p * cout + c] = bias?[c] ?? 0 } }
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
        if let bias {
            parallel.chunks(pixels, serialLimit: max(1, Parallel.serialLimit / cout), align: 1) { range in
                for p in range {
                    let row = y + p * cout
                    for c in 0..<cout { row[c] += bias[c] }
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
                                    dw: UnsafeMutablePointer<Float>) throws {
        let cin = shape.inChannels, cout = shape.outChannels, kk = k * k * cin
        if k == 1 {
            // dW = xᵀ · dy.
            CPUGemm.sgemm(x, dy, dw, m: cin, n: cout, k: pixels, transA: true)
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
                              transA: true, beta: b == 0 ? 0 : 1)
                b = images.upperBound
            }
        }
    }
}

/// Output channels split into SIMD lane blocks of 64, 32 or 16 (the last one zero-padded).
struct LaneBlocks {
    struct Block {
        let start: Int
        let width: Int
    }

    let all: [Block]
    let paddedChannels: Int

    init(channels: Int) {
        var blocks: [Block] = []
        var c = 0
        while c < channels {
            let left = channels - c
            let width = left >= LaneBlocks.widest ? LaneBlocks.widest : (left > 16 && LaneBlocks.widest >= 32 ? 32 : 16)
            blocks.append(Block(start: c, width: width))
            c += width
        }
        all = blocks
        paddedChannels = c
    }

    /// The widest lane block used (tuned on the benchmark machine).
    static let widest = 32
}

struct TileGeometry {
    /// Kernel rows (k) and the distance between them in the padded input.
    let rows: Int, rowStride: Int
    /// Contiguous products per kernel row (k·channels).
    let segment: Int
    /// Floats between consecutive output pixels.
    let outStride: Int
}

/// The register tile of the direct forward product: `pixels` output pixels × one lane block.
enum ForwardTile {
    static let pixels = 8

    @inline(__always)
    static func run<V: SIMD>(_: V.Type, _ x: UnsafePointer<Float>, _ bases: UnsafePointer<Int>, _ g: TileGeometry,
                             _ weights: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
                             _ out: UnsafeMutablePointer<Float>, _ count: Int, _ lanes: Int) where V.Scalar == Float {
        let width = V.scalarCount
        let b = UnsafeRawPointer(bias).loadUnaligned(as: V.self)
        var a0 = b, a1 = b, a2 = b, a3 = b, a4 = b, a5 = b, a6 = b, a7 = b
        var wp = weights
        for kh in 0..<g.rows {
            let o = kh * g.rowStride
            let x0 = x + bases[0] + o, x1 = x + bases[1] + o, x2 = x + bases[2] + o, x3 = x + bases[3] + o
            let x4 = x + bases[4] + o, x5 = x + bases[5] + o, x6 = x + bases[6] + o, x7 = x + bases[7] + o
            for q in 0..<g.segment {
                let v = UnsafeRawPointer(wp + q * width).loadUnaligned(as: V.self)
                a0 += x0[q] * v
                a1 += x1[q] * v
                a2 += x2[q] * v
                a3 += x3[q] * v
                a4 += x4[q] * v
                a5 += x5[q] * v
                a6 += x6[q] * v
                a7 += x7[q] * v
            }
            wp += g.segment * width
        }
        store(a0, out, lanes)
        if count > 1 { store(a1, out + g.outStride, lanes) }
        if count > 2 { store(a2, out + 2 * g.outStride, lanes) }
        if count > 3 { store(a3, out + 3 * g.outStride, lanes) }
        if count > 4 { store(a4, out + 4 * g.outStride, lanes) }
        if count > 5 { store(a5, out + 5 * g.outStride, lanes) }
        if count > 6 { store(a6, out + 6 * g.outStride, lanes) }
        if count > 7 { store(a7, out + 7 * g.outStride, lanes) }
    }
}

/// The register tile of the filter gradient: up to `qBlock` products × one lane block, summed over a
/// chunk of pixels and added to the accumulator rows.
enum FilterTile {
    static let qBlock = 8
    static let chunkPixels = 256

    @inline(__always)
    static func run<V: SIMD>(_: V.Type, _ x: UnsafePointer<Float>, _ bases: UnsafePointer<Int>, _ count: Int,
                             _ offset: Int, _ dy: UnsafePointer<Float>, _ dyStride: Int,
                             _ acc: UnsafeMutablePointer<Float>, _ accStride: Int, _ span: Int) where V.Scalar == Float {
        if span < qBlock {
            // Short tail of a kernel row: one product at a time.
            for q in 0..<span {
                var a = V()
                for t in 0..<count {
                    a += x[bases[t] + offset + q] * UnsafeRawPointer(dy + t * dyStride).loadUnaligned(as: V.self)
                }
                add(a, acc + q * accStride)
            }
            return
        }
        var a0 = V(), a1 = V(), a2 = V(), a3 = V(), a4 = V(), a5 = V(), a6 = V(), a7 = V()
        for t in 0..<count {
            let d = UnsafeRawPointer(dy + t * dyStride).loadUnaligned(as: V.self)
            let xs = x + bases[t] + offset
            a0 += xs[0] * d
            a1 += xs[1] * d
            a2 += xs[2] * d
            a3 += xs[3] * d
            a4 += xs[4] * d
            a5 += xs[5] * d
            a6 += xs[6] * d
            a7 += xs[7] * d
        }
        add(a0, acc)
        add(a1, acc + accStride)
        add(a2, acc + 2 * accStride)
        add(a3, acc + 3 * accStride)
        add(a4, acc + 4 * accStride)
        add(a5, acc + 5 * accStride)
        add(a6, acc + 6 * accStride)
        add(a7, acc + 7 * accStride)
    }

    @inline(__always)
    private static func add<V: SIMD>(_ v: V, _ p: UnsafeMutablePointer<Float>) where V.Scalar == Float {
        let raw = UnsafeMutableRawPointer(p)
        raw.storeBytes(of: raw.loadUnaligned(as: V.self) + v, as: V.self)
    }
}

/// Stores the first `lanes` lanes of `v` at `p`.
@inline(__always)
private func store<V: SIMD>(_ v: V, _ p: UnsafeMutablePointer<Float>, _ lanes: Int) where V.Scalar == Float {
    if lanes == V.scalarCount {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    } else {
        for l in 0..<lanes { p[l] = v[l] }
    }
}
