import ACAIDevice
import Foundation

// Register tiles of the direct convolution. A tile keeps R rows (output pixels, or filter products)
// × C blocks of 16 output lanes in SIMD16 accumulators. Which R×C is fastest depends on the vector
// instructions the compiler was allowed to use (baseline x86-64 SSE2: 2×1; AVX2: 4×1; AVX-512: 6×2
// or 8×1 — spilling accumulators costs 5-10×), and Swift cannot ask at compile time, so
// `ConvTuning.shared` times the candidates once per process. Every tile accumulates each output in
// the same order, so the choice never changes a result.
//
// The tile bodies are written out (generated) because Swift keeps only named locals in registers.

typealias Vector = SIMD16<Float>

@inline(__always)
func load(_ p: UnsafePointer<Float>) -> Vector {
    UnsafeRawPointer(p).loadUnaligned(as: Vector.self)
}

/// Sum of the lanes as a tree (halves added), far shorter than a lane-by-lane chain.
@inline(__always)
func horizontalSum(_ v: Vector) -> Float {
    let s8 = v.lowHalf + v.highHalf
    let s4 = s8.lowHalf + s8.highHalf
    let s2 = s4.lowHalf + s4.highHalf
    return s2[0] + s2[1]
}

/// Stores the first `lanes` (≤ 16) lanes of `v` at `p`.
@inline(__always)
func store(_ v: Vector, _ p: UnsafeMutablePointer<Float>, _ lanes: Int) {
    if lanes >= 16 {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vector.self)
    } else {
        for l in 0..<max(lanes, 0) { p[l] = v[l] }
    }
}

@inline(__always)
private func add(_ v: Vector, _ p: UnsafeMutablePointer<Float>) {
    let raw = UnsafeMutableRawPointer(p)
    raw.storeBytes(of: raw.loadUnaligned(as: Vector.self) + v, as: Vector.self)
}

/// The loop bounds a forward tile needs.
struct TileGeometry {
    /// Kernel rows (k) and the distance between them in the padded input.
    let rows: Int, rowStride: Int
    /// Contiguous products per kernel row (k·channels).
    let segment: Int
    /// Floats between consecutive output pixels.
    let outStride: Int
    /// Floats between consecutive filter rows (products).
    let weightStride: Int
}

/// R rows × C lane blocks.
enum TileShape: CaseIterable, Sendable {
    case r2c1, r4c1, r8c1, r4c2, r6c2

    var rows: Int {
        switch self {
        case .r2c1: return 2
        case .r4c1, .r4c2: return 4
        case .r6c2: return 6
        case .r8c1: return 8
        }
    }

    var blocks: Int {
        switch self {
        case .r2c1, .r4c1, .r8c1: return 1
        case .r4c2, .r6c2: return 2
        }
    }

    /// A multiple of every `rows`, so chunks of this many pixels split into whole tiles of any shape.
    static let rowsMultiple = 24
}

/// Output channels split into lane blocks of 32 (when 2-block tiles are faster) and 16, the last one
/// zero-padded.
struct LaneBlocks {
    struct Block {
        let start: Int
        let width: Int
    }

    let all: [Block]
    /// Channels rounded up to a multiple of 16.
    let paddedChannels: Int

    init(channels: Int, allowWide: Bool) {
        var blocks: [Block] = []
        var c = 0
        while c < channels {
            let width = allowWide && channels - c >= 32 ? 32 : 16
            blocks.append(Block(start: c, width: width))
            c += width
        }
        all = blocks
        paddedChannels = c
    }
}

/// The tiles chosen for this build and machine.
struct ConvTuning: Sendable {
    var forward16: TileShape
    /// nil when two 16-lane tiles beat one 32-lane tile.
    var forward32: TileShape?
    var filter16: TileShape
    var filter32: TileShape?
    /// Single-thread speed of the best forward tile. Below `fastDirectGFLOPS` the build has only SSE
    /// (baseline x86-64: ~45 here, against ~110 with AVX2 and ~200 with AVX-512); the description says so.
    var forwardGFLOPS: Double

    static let fastDirectGFLOPS = 75.0

    var directIsFast: Bool { forwardGFLOPS >= ConvTuning.fastDirectGFLOPS }

    /// `ACAI_CPU_CONV_TILES=forward16,forward32,filter16,filter32` (e.g. `8x16,6x32,8x16,-`) fixes the
    /// tiles instead, for benchmarks and for tests that every tile gives the same results.
    static let shared = ProcessInfo.processInfo.environment["ACAI_CPU_CONV_TILES"].flatMap(ConvTuning.init(spec:))
        ?? ConvTuning.calibrate()

    init(forward16: TileShape, forward32: TileShape?, filter16: TileShape, filter32: TileShape?,
         forwardGFLOPS: Double) {
        self.forward16 = forward16
        self.forward32 = forward32
        self.filter16 = filter16
        self.filter32 = filter32
        self.forwardGFLOPS = forwardGFLOPS
    }

    init?(spec: String) {
        func shape(_ name: Substring, blocks: Int) -> TileShape?? {
            if name == "-" { return .some(nil) }
            guard let t = TileShape.allCases.first(where: { "\($0.rows)x\(16 * $0.blocks)" == name }),
                  t.blocks == blocks else { return nil }
            return .some(t)
        }
        let parts = spec.split(separator: ",")
        guard parts.count == 4,
              let f16 = shape(parts[0], blocks: 1), let f16 = f16, let f32 = shape(parts[1], blocks: 2),
              let g16 = shape(parts[2], blocks: 1), let g16 = g16, let g32 = shape(parts[3], blocks: 2)
        else { return nil }
        // Fixed tiles are for measuring the direct kernels, so count them as fast.
        self.init(forward16: f16, forward32: f32, filter16: g16, filter32: g32, forwardGFLOPS: .infinity)
    }

    var summary: String {
        func name(_ t: TileShape?) -> String { t.map { "\($0.rows)x\(16 * $0.blocks)" } ?? "-" }
        let speed = forwardGFLOPS.isFinite ? String(format: " (%.0f GFLOP/s per thread)", forwardGFLOPS) : ""
        return "forward \(name(forward16))/\(name(forward32)), filter \(name(filter16))/\(name(filter32))"
            + speed + (directIsFast ? "" : ", slow: below \(Int(ConvTuning.fastDirectGFLOPS)) GFLOP/s per thread, as "
                + "without AVX (is the build for this CPU? -target-cpu native, or ACAI_TARGET_CPU)")
    }

    /// Times each tile on a small 3×3 convolution (4 images of 8×8, 32 → 32 channels; about 5 MFLOP a
    /// run, 10-30 ms in all) and keeps the fastest.
    static func calibrate() -> ConvTuning {
        let n = 4, h = 8, c = 32, pw = h + 2
        let pixels = n * h * h, segment = 3 * c, kk = 3 * segment
        let input = UnsafeMutablePointer<Float>.allocate(capacity: n * pw * pw * c)
        let weights = UnsafeMutablePointer<Float>.allocate(capacity: kk * c)
        let output = UnsafeMutablePointer<Float>.allocate(capacity: pixels * c)
        let acc = UnsafeMutablePointer<Float>.allocate(capacity: kk * c)
        let bases = UnsafeMutablePointer<Int>.allocate(capacity: pixels + TileShape.rowsMultiple)
        defer {
            input.deallocate(); weights.deallocate(); output.deallocate(); acc.deallocate(); bases.deallocate()
        }
        for i in 0..<(n * pw * pw * c) { input[i] = RandomBits.uniform(seed: 7, counter: UInt64(i)) - 0.5 }
        for i in 0..<(kk * c) { weights[i] = RandomBits.uniform(seed: 8, counter: UInt64(i)) - 0.5 }
        acc.initialize(repeating: 0, count: kk * c)
        for p in 0..<(pixels + TileShape.rowsMultiple) {
            let q = min(p, pixels - 1)
            bases[p] = (((q / (h * h)) * pw + (q / h) % h) * pw + q % h) * c
        }
        let geometry = TileGeometry(rows: 3, rowStride: pw * c, segment: segment, outStride: c, weightStride: c)

        func time(_ body: () -> Void) -> UInt64 {
            let start = monotonicNanoseconds()
            body()
            return monotonicNanoseconds() - start
        }
        func forwardTime(_ shape: TileShape) -> UInt64 {
            time {
                for block in stride(from: 0, to: c, by: 16 * shape.blocks) {
                    var p = 0
                    while p < pixels {
                        ConvTiles.forward(shape, input, bases + p, geometry, weights + block, weights,
                                          output + p * c + block, min(shape.rows, pixels - p), 16 * shape.blocks)
                        p += shape.rows
                    }
                }
            }
        }
        func filterTime(_ shape: TileShape) -> UInt64 {
            time {
                for block in stride(from: 0, to: c, by: 16 * shape.blocks) {
                    for kh in 0..<3 {
                        var q = 0
                        while q < segment {
                            let span = min(shape.rows, segment - q)
                            ConvTiles.filter(shape, input, bases, pixels, kh * geometry.rowStride + q, output + block,
                                             c, acc + (kh * segment + q) * c + block, c, span)
                            q += span
                        }
                    }
                }
            }
        }
        // Rounds interleave the candidates, so a stretch of load slows all of them alike; the first
        // round only warms caches and is not counted; each candidate keeps its best round.
        let shapes = TileShape.allCases
        var forwardBest = [UInt64](repeating: .max, count: shapes.count)
        var filterBest = forwardBest
        for round in 0..<8 {
            for (i, shape) in shapes.enumerated() {
                let f = forwardTime(shape), g = filterTime(shape)
                if round > 0 {
                    forwardBest[i] = min(forwardBest[i], f)
                    filterBest[i] = min(filterBest[i], g)
                }
            }
        }
        func pick(blocks: Int, _ best: [UInt64]) -> (TileShape, UInt64) {
            shapes.indices.filter { shapes[$0].blocks == blocks }.map { (shapes[$0], best[$0]) }.min { $0.1 < $1.1 }!
        }
        let (f16, f16Time) = pick(blocks: 1, forwardBest)
        let (f32, f32Time) = pick(blocks: 2, forwardBest)
        let (g16, g16Time) = pick(blocks: 1, filterBest)
        let (g32, g32Time) = pick(blocks: 2, filterBest)
        let flops = 2.0 * Double(pixels * kk * c)
        return ConvTuning(forward16: f16, forward32: f32Time < f16Time ? f32 : nil,
                          filter16: g16, filter32: g32Time < g16Time ? g32 : nil,
                          forwardGFLOPS: flops / Double(max(min(f16Time, f32Time), 1)))
    }
}

enum ConvTiles {
    /// out[r, lanes] = bias + Σ_kh Σ_q x[bases[r] + kh·rowStride + q] · w[kh·segment + q, lanes] for the
    /// first `count` of the tile's rows.
    @inline(__always)
    static func forward(_ shape: TileShape, _ x: UnsafePointer<Float>, _ bases: UnsafePointer<Int>, _ g: TileGeometry,
                        _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                        _ count: Int, _ lanes: Int) {
        switch shape {
        case .r2c1: forwardR2C1(x, bases, g, w, bias, out, count, lanes)
        case .r4c1: forwardR4C1(x, bases, g, w, bias, out, count, lanes)
        case .r8c1: forwardR8C1(x, bases, g, w, bias, out, count, lanes)
        case .r4c2: forwardR4C2(x, bases, g, w, bias, out, count, lanes)
        case .r6c2: forwardR6C2(x, bases, g, w, bias, out, count, lanes)
        }
    }

    /// acc[r, lanes] += Σ_t x[bases[t] + offset + r] · dy[t·dyStride + lanes] for r in 0..<span.
    @inline(__always)
    static func filter(_ shape: TileShape, _ x: UnsafePointer<Float>, _ bases: UnsafePointer<Int>, _ count: Int,
                       _ offset: Int, _ dy: UnsafePointer<Float>, _ dyStride: Int, _ acc: UnsafeMutablePointer<Float>,
                       _ accStride: Int, _ span: Int) {
        switch shape {
        case .r2c1: filterR2C1(x, bases, count, offset, dy, dyStride, acc, accStride, span)
        case .r4c1: filterR4C1(x, bases, count, offset, dy, dyStride, acc, accStride, span)
        case .r8c1: filterR8C1(x, bases, count, offset, dy, dyStride, acc, accStride, span)
        case .r4c2: filterR4C2(x, bases, count, offset, dy, dyStride, acc, accStride, span)
        case .r6c2: filterR6C2(x, bases, count, offset, dy, dyStride, acc, accStride, span)
        }
    }

    /// Fewer products than the tile has rows (the end of a kernel row): one at a time, same order.
    private static func filterTail(_ x: UnsafePointer<Float>, _ bases: UnsafePointer<Int>, _ count: Int, _ offset: Int,
                                   _ dy: UnsafePointer<Float>, _ dyStride: Int, _ acc: UnsafeMutablePointer<Float>,
                                   _ accStride: Int, _ span: Int, blocks: Int) {
        for r in 0..<span {
            for c in 0..<blocks {
                var a = Vector()
                for t in 0..<count { a.addProduct(x[bases[t] + offset + r], load(dy + t * dyStride + 16 * c)) }
                add(a, acc + r * accStride + 16 * c)
            }
        }
    }

    // MARK: Generated tiles (R×C written out)

    private static func forwardR2C1(_ x: UnsafePointer<Float>, _ bases: UnsafePointer<Int>, _ g: TileGeometry,
                             _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
                             _ out: UnsafeMutablePointer<Float>, _ count: Int, _ lanes: Int) {
        let b0 = load(bias)
        var a00 = b0, a10 = b0
        var wp = w
        for kh in 0..<g.rows {
            let o = kh * g.rowStride
            let x0 = x + bases[0] + o, x1 = x + bases[1] + o
            for q in 0..<g.segment {
                let v0 = load(wp + q * g.weightStride)
                let s0 = x0[q], s1 = x1[q]
                a00.addProduct(s0, v0)
                a10.addProduct(s1, v0)
            }
            wp += g.segment * g.weightStride
        }
        store(a00, out, min(lanes, 16))
        if count > 1 {
            store(a10, out + 1 * g.outStride, min(lanes, 16))
        }
    }

    private static func forwardR4C1(_ x: UnsafePointer<Float>, _ bases: UnsafePointer<Int>, _ g: TileGeometry,
                             _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
                             _ out: UnsafeMutablePointer<Float>, _ count: Int, _ lanes: Int) {
        let b0 = load(bias)
        var a00 = b0, a10 = b0, a20 = b0, a30 = b0
        var wp = w
        for kh in 0..<g.rows {
            let o = kh * g.rowStride
            let x0 = x + bases[0] + o, x1 = x + bases[1] + o, x2 = x + bases[2] + o, x3 = x + bases[3] + o
            for q in 0..<g.segment {
                let v0 = load(wp + q * g.weightStride)
                let s0 = x0[q], s1 = x1[q], s2 = x2[q], s3 = x3[q]
                a00.addProduct(s0, v0)
                a10.addProduct(s1, v0)
                a20.addProduct(s2, v0)
                a30.addProduct(s3, v0)
            }
            wp += g.segment * g.weightStride
        }
        store(a00, out, min(lanes, 16))
        if count > 1 {
            store(a10, out + 1 * g.outStride, min(lanes, 16))
        }
        if count > 2 {
            store(a20, out + 2 * g.outStride, min(lanes, 16))
        }
        if count > 3 {
            store(a30, out + 3 * g.outStride, min(lanes, 16))
        }
    }

    private static func forwardR8C1(_ x: UnsafePointer<Float>, _ bases: UnsafePointer<Int>, _ g: TileGeometry,
                             _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
                             _ out: UnsafeMutablePointer<Float>, _ count: Int, _ lanes: Int) {
        let b0 = load(bias)
        var a00 = b0, a10 = b0, a20 = b0, a30 = b0, a40 = b0, a50 = b0, a60 = b0, a70 = b0
        var wp = w
        for kh in 0..<g.rows {
            let o = kh * g.rowStride
            let x0 = x + bases[0] + o, x1 = x + bases[1] + o, x2 = x + bases[2] + o, x3 = x + bases[3] + o, x4 = x + bases[4] + o, x5 = x + bases[5] + o, x6 = x + bases[6] + o, x7 = x + bases[7] + o
            for q in 0..<g.segment {
                let v0 = load(wp + q * g.weightStride)
                let s0 = x0[q], s1 = x1[q], s2 = x2[q], s3 = x3[q], s4 = x4[q], s5 = x5[q], s6 = x6[q], s7 = x7[q]
                a00.addProduct(s0, v0)
                a10.addProduct(s1, v0)
                a20.addProduct(s2, v0)
                a30.addProduct(s3, v0)
                a40.addProduct(s4, v0)
                a50.addProduct(s5, v0)
                a60.addProduct(s6, v0)
                a70.addProduct(s7, v0)
            }
            wp += g.segment * g.weightStride
        }
        store(a00, out, min(lanes, 16))
        if count > 1 {
            store(a10, out + 1 * g.outStride, min(lanes, 16))
        }
        if count > 2 {
            store(a20, out + 2 * g.outStride, min(lanes, 16))
        }
        if count > 3 {
            store(a30, out + 3 * g.outStride, min(lanes, 16))
        }
        if count > 4 {
            store(a40, out + 4 * g.outStride, min(lanes, 16))
        }
        if count > 5 {
            store(a50, out + 5 * g.outStride, min(lanes, 16))
        }
        if count > 6 {
            store(a60, out + 6 * g.outStride, min(lanes, 16))
        }
        if count > 7 {
            store(a70, out + 7 * g.outStride, min(lanes, 16))
        }
    }

    private static func forwardR4C2(_ x: UnsafePointer<Float>, _ bases: UnsafePointer<Int>, _ g: TileGeometry,
                             _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
                             _ out: UnsafeMutablePointer<Float>, _ count: Int, _ lanes: Int) {
        let b0 = load(bias)
        let b1 = load(bias + 16)
        var a00 = b0, a10 = b0, a20 = b0, a30 = b0
        var a01 = b1, a11 = b1, a21 = b1, a31 = b1
        var wp = w
        for kh in 0..<g.rows {
            let o = kh * g.rowStride
            let x0 = x + bases[0] + o, x1 = x + bases[1] + o, x2 = x + bases[2] + o, x3 = x + bases[3] + o
            for q in 0..<g.segment {
                let v0 = load(wp + q * g.weightStride), v1 = load(wp + q * g.weightStride + 16)
                let s0 = x0[q], s1 = x1[q], s2 = x2[q], s3 = x3[q]
                a00.addProduct(s0, v0)
                a10.addProduct(s1, v0)
                a20.addProduct(s2, v0)
                a30.addProduct(s3, v0)
                a01.addProduct(s0, v1)
                a11.addProduct(s1, v1)
                a21.addProduct(s2, v1)
                a31.addProduct(s3, v1)
            }
            wp += g.segment * g.weightStride
        }
        store(a00, out, min(lanes, 16))
        store(a01, out + 16, lanes - 16)
        if count > 1 {
            store(a10, out + 1 * g.outStride, min(lanes, 16))
            store(a11, out + 1 * g.outStride + 16, lanes - 16)
        }
        if count > 2 {
            store(a20, out + 2 * g.outStride, min(lanes, 16))
            store(a21, out + 2 * g.outStride + 16, lanes - 16)
        }
        if count > 3 {
            store(a30, out + 3 * g.outStride, min(lanes, 16))
            store(a31, out + 3 * g.outStride + 16, lanes - 16)
        }
    }

    private static func forwardR6C2(_ x: UnsafePointer<Float>, _ bases: UnsafePointer<Int>, _ g: TileGeometry,
                             _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
                             _ out: UnsafeMutablePointer<Float>, _ count: Int, _ lanes: Int) {
        let b0 = load(bias)
        let b1 = load(bias + 16)
        var a00 = b0, a10 = b0, a20 = b0, a30 = b0, a40 = b0, a50 = b0
        var a01 = b1, a11 = b1, a21 = b1, a31 = b1, a41 = b1, a51 = b1
        var wp = w
        for kh in 0..<g.rows {
            let o = kh * g.rowStride
            let x0 = x + bases[0] + o, x1 = x + bases[1] + o, x2 = x + bases[2] + o, x3 = x + bases[3] + o, x4 = x + bases[4] + o, x5 = x + bases[5] + o
            for q in 0..<g.segment {
                let v0 = load(wp + q * g.weightStride), v1 = load(wp + q * g.weightStride + 16)
                let s0 = x0[q], s1 = x1[q], s2 = x2[q], s3 = x3[q], s4 = x4[q], s5 = x5[q]
                a00.addProduct(s0, v0)
                a10.addProduct(s1, v0)
                a20.addProduct(s2, v0)
                a30.addProduct(s3, v0)
                a40.addProduct(s4, v0)
                a50.addProduct(s5, v0)
                a01.addProduct(s0, v1)
                a11.addProduct(s1, v1)
                a21.addProduct(s2, v1)
                a31.addProduct(s3, v1)
                a41.addProduct(s4, v1)
                a51.addProduct(s5, v1)
            }
            wp += g.segment * g.weightStride
        }
        store(a00, out, min(lanes, 16))
        store(a01, out + 16, lanes - 16)
        if count > 1 {
            store(a10, out + 1 * g.outStride, min(lanes, 16))
            store(a11, out + 1 * g.outStride + 16, lanes - 16)
        }
        if count > 2 {
            store(a20, out + 2 * g.outStride, min(lanes, 16))
            store(a21, out + 2 * g.outStride + 16, lanes - 16)
        }
        if count > 3 {
            store(a30, out + 3 * g.outStride, min(lanes, 16))
            store(a31, out + 3 * g.outStride + 16, lanes - 16)
        }
        if count > 4 {
            store(a40, out + 4 * g.outStride, min(lanes, 16))
            store(a41, out + 4 * g.outStride + 16, lanes - 16)
        }
        if count > 5 {
            store(a50, out + 5 * g.outStride, min(lanes, 16))
            store(a51, out + 5 * g.outStride + 16, lanes - 16)
        }
    }

    private static func filterR2C1(_ x: UnsafePointer<Float>, _ bases: UnsafePointer<Int>, _ count: Int, _ offset: Int,
                            _ dy: UnsafePointer<Float>, _ dyStride: Int,
                            _ acc: UnsafeMutablePointer<Float>, _ accStride: Int, _ span: Int) {
        if span < 2 {
            filterTail(x, bases, count, offset, dy, dyStride, acc, accStride, span, blocks: 1)
            return
        }
        var a00 = Vector(), a10 = Vector()
        for t in 0..<count {
            let d = dy + t * dyStride
            let d0 = load(d)
            let xs = x + bases[t] + offset
            let s0 = xs[0], s1 = xs[1]
            a00.addProduct(s0, d0)
            a10.addProduct(s1, d0)
        }
        add(a00, acc)
        add(a10, acc + 1 * accStride)
    }

    private static func filterR4C1(_ x: UnsafePointer<Float>, _ bases: UnsafePointer<Int>, _ count: Int, _ offset: Int,
                            _ dy: UnsafePointer<Float>, _ dyStride: Int,
                            _ acc: UnsafeMutablePointer<Float>, _ accStride: Int, _ span: Int) {
        if span < 4 {
            filterTail(x, bases, count, offset, dy, dyStride, acc, accStride, span, blocks: 1)
            return
        }
        var a00 = Vector(), a10 = Vector(), a20 = Vector(), a30 = Vector()
        for t in 0..<count {
            let d = dy + t * dyStride
            let d0 = load(d)
            let xs = x + bases[t] + offset
            let s0 = xs[0], s1 = xs[1], s2 = xs[2], s3 = xs[3]
            a00.addProduct(s0, d0)
            a10.addProduct(s1, d0)
            a20.addProduct(s2, d0)
            a30.addProduct(s3, d0)
        }
        add(a00, acc)
        add(a10, acc + 1 * accStride)
        add(a20, acc + 2 * accStride)
        add(a30, acc + 3 * accStride)
    }

    private static func filterR8C1(_ x: UnsafePointer<Float>, _ bases: UnsafePointer<Int>, _ count: Int, _ offset: Int,
                            _ dy: UnsafePointer<Float>, _ dyStride: Int,
                            _ acc: UnsafeMutablePointer<Float>, _ accStride: Int, _ span: Int) {
        if span < 8 {
            filterTail(x, bases, count, offset, dy, dyStride, acc, accStride, span, blocks: 1)
            return
        }
        var a00 = Vector(), a10 = Vector(), a20 = Vector(), a30 = Vector(), a40 = Vector(), a50 = Vector(), a60 = Vector(), a70 = Vector()
        for t in 0..<count {
            let d = dy + t * dyStride
            let d0 = load(d)
            let xs = x + bases[t] + offset
            let s0 = xs[0], s1 = xs[1], s2 = xs[2], s3 = xs[3], s4 = xs[4], s5 = xs[5], s6 = xs[6], s7 = xs[7]
            a00.addProduct(s0, d0)
            a10.addProduct(s1, d0)
            a20.addProduct(s2, d0)
            a30.addProduct(s3, d0)
            a40.addProduct(s4, d0)
            a50.addProduct(s5, d0)
            a60.addProduct(s6, d0)
            a70.addProduct(s7, d0)
        }
        add(a00, acc)
        add(a10, acc + 1 * accStride)
        add(a20, acc + 2 * accStride)
        add(a30, acc + 3 * accStride)
        add(a40, acc + 4 * accStride)
        add(a50, acc + 5 * accStride)
        add(a60, acc + 6 * accStride)
        add(a70, acc + 7 * accStride)
    }

    private static func filterR4C2(_ x: UnsafePointer<Float>, _ bases: UnsafePointer<Int>, _ count: Int, _ offset: Int,
                            _ dy: UnsafePointer<Float>, _ dyStride: Int,
                            _ acc: UnsafeMutablePointer<Float>, _ accStride: Int, _ span: Int) {
        if span < 4 {
            filterTail(x, bases, count, offset, dy, dyStride, acc, accStride, span, blocks: 2)
            return
        }
        var a00 = Vector(), a10 = Vector(), a20 = Vector(), a30 = Vector()
        var a01 = Vector(), a11 = Vector(), a21 = Vector(), a31 = Vector()
        for t in 0..<count {
            let d = dy + t * dyStride
            let d0 = load(d), d1 = load(d + 16)
            let xs = x + bases[t] + offset
            let s0 = xs[0], s1 = xs[1], s2 = xs[2], s3 = xs[3]
            a00.addProduct(s0, d0)
            a10.addProduct(s1, d0)
            a20.addProduct(s2, d0)
            a30.addProduct(s3, d0)
            a01.addProduct(s0, d1)
            a11.addProduct(s1, d1)
            a21.addProduct(s2, d1)
            a31.addProduct(s3, d1)
        }
        add(a00, acc)
        add(a01, acc + 16)
        add(a10, acc + 1 * accStride)
        add(a11, acc + 1 * accStride + 16)
        add(a20, acc + 2 * accStride)
        add(a21, acc + 2 * accStride + 16)
        add(a30, acc + 3 * accStride)
        add(a31, acc + 3 * accStride + 16)
    }

    private static func filterR6C2(_ x: UnsafePointer<Float>, _ bases: UnsafePointer<Int>, _ count: Int, _ offset: Int,
                            _ dy: UnsafePointer<Float>, _ dyStride: Int,
                            _ acc: UnsafeMutablePointer<Float>, _ accStride: Int, _ span: Int) {
        if span < 6 {
            filterTail(x, bases, count, offset, dy, dyStride, acc, accStride, span, blocks: 2)
            return
        }
        var a00 = Vector(), a10 = Vector(), a20 = Vector(), a30 = Vector(), a40 = Vector(), a50 = Vector()
        var a01 = Vector(), a11 = Vector(), a21 = Vector(), a31 = Vector(), a41 = Vector(), a51 = Vector()
        for t in 0..<count {
            let d = dy + t * dyStride
            let d0 = load(d), d1 = load(d + 16)
            let xs = x + bases[t] + offset
            let s0 = xs[0], s1 = xs[1], s2 = xs[2], s3 = xs[3], s4 = xs[4], s5 = xs[5]
            a00.addProduct(s0, d0)
            a10.addProduct(s1, d0)
            a20.addProduct(s2, d0)
            a30.addProduct(s3, d0)
            a40.addProduct(s4, d0)
            a50.addProduct(s5, d0)
            a01.addProduct(s0, d1)
            a11.addProduct(s1, d1)
            a21.addProduct(s2, d1)
            a31.addProduct(s3, d1)
            a41.addProduct(s4, d1)
            a51.addProduct(s5, d1)
        }
        add(a00, acc)
        add(a01, acc + 16)
        add(a10, acc + 1 * accStride)
        add(a11, acc + 1 * accStride + 16)
        add(a20, acc + 2 * accStride)
        add(a21, acc + 2 * accStride + 16)
        add(a30, acc + 3 * accStride)
        add(a31, acc + 3 * accStride + 16)
        add(a40, acc + 4 * accStride)
        add(a41, acc + 4 * accStride + 16)
        add(a50, acc + 5 * accStride)
        add(a51, acc + 5 * accStride + 16)
    }
}
