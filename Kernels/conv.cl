// 2-D convolution, NHWC input, HWIO filter w [KS, KS, CIN, COUT], stride 1, 'same' zero padding, with the
// bias and activation fused in: y = act(conv(x, w) + bias), act = identity or leaky ReLU (slope alpha).
//
// Every kernel reads the unpadded input and treats taps outside the image as zero, with no padded copy and
// no extra launch: the register-blocked kernels point a row's out-of-image tap at Z, a buffer of zeros the
// host keeps (so their inner loops are those of a padded image, with no per-element test), the others test
// the tap or clip their loops. The filter is read in its HWIO layout (no transposed or flipped copy launched;
// conv_dx_blocked copies its block into private memory). One op is one launch on CPU devices when the channels
// fill whole vector blocks; GPUs may add one pass that sums split-K slices or pixel chunks (conv_sum_slices,
// conv_sum_chunks), because they need many work-groups.
//   y[p, co]  = act(bias[co] + sum over taps t = (kh, kw) inside the image and ci of
//               x[p + (kh - P, kw - P), ci] * w[t, ci, co])
//   g[p, co]  = dy[p, co] * act'(y[p, co])       (act' = 1 where y > 0, alpha elsewhere; from the saved y)
//   dx[p, ci] = sum over taps t and co of g[p - (kh - P, kw - P), co] * w[t, ci, co]
//   dw[t, ci, co] = sum over p of x[p + (kh - P, kw - P), ci] * g[p, co];  db[co] = sum over p of g[p, co]
// Kernels:
// - conv_fwd_blocked: register-blocked like gemm_blocked (RM pixels x VW * NV output channels per
//   work-item, VW-wide accumulators); the host launches one work-item per column block it covers.
// - conv_fwd_direct: one output channel of one image row per work-item; for few output channels (e.g. 1)
//   and the channels left over by the blocked kernel.
// - conv_dx_blocked: the input gradient as conv_fwd_blocked's product of g with the flipped filter, which
//   each work-item copies (its column block) into private memory; conv_dx_nt: dot products along co, which
//   is contiguous in both g and the HWIO filter, for many output channels and leftover columns;
//   conv_dx_narrow: for fewer than 4 output channels, vectorised over ci.
// - conv_dw_blocked (vectors over co) and conv_dw_vec (vectors over ci): the filter gradient, each
//   work-item summing the pixels of one chunk of image rows; one extra row of work-items sums db.
// - conv_fwd_tiled: local-memory tiles for GPUs, forward and (FLIP=1) input gradient.
// Build options: -DKS=<1|3>, -DACT=<0|1> (leaky ReLU epilogue of the forward kernels), -DMASK=<0|1> (dy
// masked by act'(y) in the backward kernels) and, per kernel, -DRM -DVW -DNV, -DVC -DWS or -DRN -DVK.
#ifndef KS
#define KS 3
#endif
#define P (KS / 2)
#ifndef RM
#define RM 8
#endif
#ifndef VW
#define VW 16
#endif
#ifndef NV
#define NV 1
#endif
#ifndef VC
#define VC 1
#endif
#ifndef RN
#define RN 4
#endif
#ifndef VK
#define VK 1
#endif
#ifndef ACT
#define ACT 0
#endif
#ifndef MASK
#define MASK 0
#endif
// conv_dw_blocked: CLAMP=1 when RM does not divide CIN (the last block's rows past CIN reread row CIN - 1);
// with CLAMP=0 a row's x value is at a constant offset from one pointer (RM clamped indices would take as many
// integer registers: 16 of them spill on x86-64, measured 20-40% slower for the 16-row blocks on PoCL).
#ifndef CLAMP
#define CLAMP 1
#endif
#define VT VEC_TYPE(VW)
#define CT VEC_TYPE(VC)
#define KT VEC_TYPE(VK)

// Leaky ReLU of a scalar or vector v (select keeps NaNs, unlike fmax/fmin tricks).
#define LEAKY(v, a) select((a) * (v), (v), (v) > 0.0f)
// The gradient g masked by act'(y): g where y > 0, alpha * g elsewhere.
#define MASKED(g, y, a) select((a) * (g), (g), (y) > 0.0f)

// Pixel p = (n, h, w) of an [NB, H, W] image batch.
#define SPLIT_PIXEL(p, n, h, w) \
    do { (w) = (p) % W; const int t_ = (p) / W; (h) = t_ % H; (n) = t_ / H; } while (0)

__kernel void conv_fwd_blocked(__global const float* restrict X, __global const float* restrict Z,
                               __global const float* restrict Wf,
                               __global const float* restrict bias, __global float* restrict Y, const int NB,
                               const int H, const int W, const int CIN, const int COUT, const int hasBias,
                               const float alpha) {
    const int M = NB * H * W;
    const int j0 = get_global_id(0) * (VW * NV);
    const int i0 = get_global_id(1) * RM;
    if (i0 >= M) return;

    // Rows past M repeat the last pixel (computed, not stored).
    int pn[RM], ph[RM], pw[RM];
#pragma unroll
    for (int r = 0; r < RM; ++r) SPLIT_PIXEL(min(i0 + r, M - 1), pn[r], ph[r], pw[r]);

    VT acc[RM][NV];
#pragma unroll
    for (int r = 0; r < RM; ++r)
#pragma unroll
        for (int v = 0; v < NV; ++v) acc[r][v] = (VT)(0.0f);

    for (int kh = 0; kh < KS; ++kh) {
        for (int kw = 0; kw < KS; ++kw) {
            // Per row: the tap's input pixel, or Z (CIN zeros) when it lies outside the image, so that the
            // inner loop is the same as over a zero-padded image.
            const __global float* xr[RM];
#pragma unroll
            for (int r = 0; r < RM; ++r) {
                const int hh = ph[r] + kh - P, ww = pw[r] + kw - P;
                xr[r] = (hh >= 0 && hh < H && ww >= 0 && ww < W) ? X + ((pn[r] * H + hh) * W + ww) * CIN : Z;
            }
            const __global float* wp = Wf + (kh * KS + kw) * CIN * COUT + j0;
            for (int ci = 0; ci < CIN; ++ci) {
                VT b[NV];
#pragma unroll
                for (int v = 0; v < NV; ++v) b[v] = VEC_LOAD(VW, wp + v * VW);
                wp += COUT;
#pragma unroll
                for (int r = 0; r < RM; ++r) {
                    const VT a = (VT)(xr[r][ci]);
#pragma unroll
                    for (int v = 0; v < NV; ++v) acc[r][v] = fma(a, b[v], acc[r][v]);
                }
            }
        }
    }

    VT bv[NV];
#pragma unroll
    for (int v = 0; v < NV; ++v) bv[v] = hasBias ? VEC_LOAD(VW, bias + j0 + v * VW) : (VT)(0.0f);
#pragma unroll
    for (int r = 0; r < RM; ++r) {
        if (i0 + r < M) {
            __global float* yp = Y + (i0 + r) * COUT + j0;
#pragma unroll
            for (int v = 0; v < NV; ++v) {
                VT out = acc[r][v] + bv[v];
#if ACT
                out = LEAKY(out, alpha);
#endif
                VEC_STORE(VW, out, yp + v * VW);
            }
        }
    }
}

// Work-item (co - co0, image row n * H + h) computes output channel co of the W pixels of that row,
// vectorised over VC input channels (CIN a multiple of VC). The filter is read in place: a vector of VC
// weights w[t, ci.., co] is strided by COUT, given at compile time as WS so that for one output channel (a
// decoder's last layer) it is a plain vector load. This kernel serves few channels, where that is cheap.
#ifndef WS
#define WS 1
#endif
inline CT load_strided(const __global float* p) {
#if VC == 1
    return *p;
#elif WS == 1
    return VEC_LOAD(VC, p);
#else
    float t[VC];
#pragma unroll
    for (int e = 0; e < VC; ++e) t[e] = p[e * WS];
    return VEC_LOAD(VC, t);
#endif
}

__kernel void conv_fwd_direct(__global const float* restrict X, __global const float* restrict Wf,
                              __global const float* restrict bias, __global float* restrict Y, const int NB,
                              const int H, const int W, const int CIN, const int co0, const int hasBias,
                              const float alpha) {
    const int COUT = WS;
    const int co = co0 + get_global_id(0);
    const int row = get_global_id(1);
    if (row >= NB * H) return;
    const int n = row / H;
    const int h = row - n * H;
    const float b = hasBias ? bias[co] : 0.0f;
    __global float* yrow = Y + row * W * COUT + co;
    // Four pixels at a time: independent accumulators, so the FMA latency is hidden when the sum is short.
    for (int w0 = 0; w0 < W; w0 += 4) {
        CT acc[4];
#pragma unroll
        for (int u = 0; u < 4; ++u) acc[u] = (CT)(0.0f);
        for (int kh = 0; kh < KS; ++kh) {
            const int hh = h + kh - P;
            if (hh < 0 || hh >= H) continue;
            for (int kw = 0; kw < KS; ++kw) {
                const __global float* wr = Wf + (kh * KS + kw) * CIN * COUT + co;
#pragma unroll
                for (int u = 0; u < 4; ++u) {
                    const int ww = w0 + u + kw - P;
                    if (w0 + u >= W || ww < 0 || ww >= W) continue;
                    const __global float* xr = X + ((n * H + hh) * W + ww) * CIN;
                    for (int ci = 0; ci < CIN; ci += VC)
                        acc[u] = fma(VEC_LOAD(VC, xr + ci), load_strided(wr + ci * COUT), acc[u]);
                }
            }
        }
#pragma unroll
        for (int u = 0; u < 4; ++u) {
            if (w0 + u >= W) break;
            float out = VEC_SUM(VC, acc[u]) + b;
#if ACT
            out = LEAKY(out, alpha);
#endif
            yrow[(w0 + u) * COUT] = out;
        }
    }
}

// The input gradient for few output channels (COUT = WS < 4, e.g. a decoder's last layer with one colour),
// where conv_dx_nt's dot products along co would be a single term: work-item (ci block, image row) computes
// VC input channels (CIN a multiple of VC) of the W pixels of the row,
//   dx[p, ci..] = sum over taps t and co < WS of g[p - (kh - P, kw - P), co] * w[t, ci.., co].
__kernel void conv_dx_narrow(__global const float* restrict dY, __global const float* restrict Wf,
                             __global const float* restrict Yout, __global float* restrict dX, const int NB,
                             const int H, const int W, const int CIN, const float alpha) {
    const int COUT = WS;
    const int ci0 = get_global_id(0) * VC;
    const int row = get_global_id(1);
    if (row >= NB * H) return;
    const int n = row / H;
    const int h = row - n * H;
    // Four pixels at a time, as in conv_fwd_direct.
    for (int w0 = 0; w0 < W; w0 += 4) {
        CT acc[4];
#pragma unroll
        for (int u = 0; u < 4; ++u) acc[u] = (CT)(0.0f);
        for (int kh = 0; kh < KS; ++kh) {
            const int hh = h - kh + P;
            if (hh < 0 || hh >= H) continue;
            for (int kw = 0; kw < KS; ++kw) {
                const __global float* wt = Wf + ((kh * KS + kw) * CIN + ci0) * COUT;
#pragma unroll
                for (int u = 0; u < 4; ++u) {
                    const int ww = w0 + u - kw + P;
                    if (w0 + u >= W || ww < 0 || ww >= W) continue;
                    const int q = ((n * H + hh) * W + ww) * COUT;
#pragma unroll
                    for (int co = 0; co < COUT; ++co) {
                        float g = dY[q + co];
#if MASK
                        g = MASKED(g, Yout[q + co], alpha);
#endif
                        acc[u] = fma((CT)(g), load_strided(wt + co), acc[u]);
                    }
                }
            }
        }
#pragma unroll
        for (int u = 0; u < 4; ++u) {
            if (w0 + u >= W) break;
            VEC_STORE(VC, acc[u], dX + (row * W + w0 + u) * CIN + ci0);
        }
    }
}

// The input gradient as the forward product of g (dy masked by act'(y)) with the flipped, in/out-swapped
// filter B[(t', c), j] = w[KS·KS-1-t', j, c]: output pixel p reads g at p + (kh' - P, kw' - P) through tap
// t' = (kh', kw'). Reading B straight from w would be a strided gather in the inner loop, so each work-item
// first copies its column block of B for all taps (KS·KS·WS x VW·NV floats, WS = the layer's cout, a build
// option) into private memory and then computes RB blocks of RM pixels with the inner loop of conv_fwd_blocked,
// which amortises the copy. Here CIN is the layer's cin: the output channels.
#ifndef RB
#define RB 1
#endif
// With MASK, g is masked as GV-wide vectors into private memory first, so that the inner loop is that of
// conv_fwd_blocked (a broadcast operand per FMA) and not a scalar load, test and select: per block and kh,
// the RM + KS - 1 consecutive pixels its taps read, each masked once for all KS taps of that kh.
#if WS % 16 == 0
#define GV 16
#elif WS % 8 == 0
#define GV 8
#elif WS % 4 == 0
#define GV 4
#else
#define GV 1
#endif
__kernel void conv_dx_blocked(__global const float* restrict dY, __global const float* restrict Z,
                              __global const float* restrict Wf, __global const float* restrict Yout,
                              __global float* restrict dX, const int NB, const int H, const int W, const int CIN,
                              const float alpha) {
    const int M = NB * H * W;
    const int j0 = get_global_id(0) * (VW * NV);
    const int firstBlock = get_global_id(1) * RB;
    if (firstBlock * RM >= M) return;

    // Stored in order, one lane vector at a time (a scatter into private memory is slow on some CPUs).
    float bt[KS * KS * WS * VW * NV];
    for (int t = 0; t < KS * KS; ++t) {
        const __global float* src = Wf + ((KS * KS - 1 - t) * CIN + j0) * WS;
        for (int c = 0; c < WS; ++c) {
            float lanes[VW * NV];
#pragma unroll
            for (int lane = 0; lane < VW * NV; ++lane) lanes[lane] = src[lane * WS + c];
#pragma unroll
            for (int v = 0; v < NV; ++v)
                VEC_STORE(VW, VEC_LOAD(VW, lanes + v * VW), bt + (t * WS + c) * (VW * NV) + v * VW);
        }
    }

#if MASK
    float gs[RM + KS][WS];
    for (int c = 0; c < WS; ++c) gs[RM + KS - 1][c] = 0.0f;
#endif
    for (int blk = firstBlock; blk < firstBlock + RB; ++blk) {
        const int i0 = blk * RM;
        if (i0 >= M) break;
        // Per row: its pixel's offset and which taps land inside the image (bit kh of hv, bit kw of wv), so
        // that a tap's row pointers cost an add and a test each.
        int q0[RM], hv[RM], wv[RM];
#pragma unroll
        for (int r = 0; r < RM; ++r) {
            const int p = min(i0 + r, M - 1);
            int n, h, w;
            SPLIT_PIXEL(p, n, h, w);
            q0[r] = p * WS;
            int hb = 0, wb = 0;
#pragma unroll
            for (int k = 0; k < KS; ++k) {
                hb |= (h + k - P >= 0 && h + k - P < H) ? 1 << k : 0;
                wb |= (w + k - P >= 0 && w + k - P < W) ? 1 << k : 0;
            }
            hv[r] = hb;
            wv[r] = wb;
        }
        VT acc[RM][NV];
#pragma unroll
        for (int r = 0; r < RM; ++r)
#pragma unroll
            for (int v = 0; v < NV; ++v) acc[r][v] = (VT)(0.0f);

        for (int kh = 0; kh < KS; ++kh) {
#if MASK
            // The masked g rows that the block's pixels read through this kh: RM + KS - 1 consecutive pixels
            // from i0 + (kh - P) * W - P on (whatever image rows they lie in), each masked once instead of once
            // per tap. Pixels outside [0, M) are clamped: only taps outside the image would read them, and
            // those read the zero row gs[RM + KS - 1] instead.
            const int base = i0 + (kh - P) * W - P;
            for (int e = 0; e < RM + KS - 1; ++e) {
                const int q = clamp(base + e, 0, M - 1) * WS;
                for (int c = 0; c < WS; c += GV)
                    VEC_STORE(GV, MASKED(VEC_LOAD(GV, dY + q + c), VEC_LOAD(GV, Yout + q + c), alpha), &gs[e][c]);
            }
#endif
            for (int kw = 0; kw < KS; ++kw) {
#if MASK
                const float* gm[RM];
#pragma unroll
                for (int r = 0; r < RM; ++r) gm[r] = gs[((hv[r] >> kh) & (wv[r] >> kw) & 1) ? r + kw : RM + KS - 1];
#else
                // g rows of the tap, or Z (WS zeros) outside the image, as in conv_fwd_blocked.
                const int toff = ((kh - P) * W + (kw - P)) * WS;
                const __global float* gr[RM];
#pragma unroll
                for (int r = 0; r < RM; ++r) gr[r] = ((hv[r] >> kh) & (wv[r] >> kw) & 1) ? dY + q0[r] + toff : Z;
#endif
                const float* bp = bt + (kh * KS + kw) * WS * (VW * NV);
                for (int c = 0; c < WS; ++c) {
                    VT b[NV];
#pragma unroll
                    for (int v = 0; v < NV; ++v) b[v] = VEC_LOAD(VW, bp + v * VW);
                    bp += VW * NV;
#pragma unroll
                    for (int r = 0; r < RM; ++r) {
#if MASK
                        const VT a = (VT)(gm[r][c]);
#else
                        const VT a = (VT)(gr[r][c]);
#endif
#pragma unroll
                        for (int v = 0; v < NV; ++v) acc[r][v] = fma(a, b[v], acc[r][v]);
                    }
                }
            }
        }
#pragma unroll
        for (int r = 0; r < RM; ++r) {
            if (i0 + r < M) {
#pragma unroll
                for (int v = 0; v < NV; ++v) VEC_STORE(VW, acc[r][v], dX + (i0 + r) * CIN + j0 + v * VW);
            }
        }
    }
}

// The input gradient as dot products: work-item (ci block, pixel block) computes dx for RM pixels x RN input
// channels from ciBegin on as VK-wide dot products along co (COUT a multiple of VK) of g rows and filter rows
// w[t, ci, :], both contiguous, with MASK applying act'(y) to each dy vector as it is loaded. No copy of the
// filter is needed, but each output ends in a horizontal sum: this pays for many output channels (COUT >= 128)
// on few pixels, where conv_dx_blocked could not amortise its filter copy, and serves the columns it leaves over.
__kernel void conv_dx_nt(__global const float* restrict dY, __global const float* restrict Z,
                         __global const float* restrict Wf,
                         __global const float* restrict Yout, __global float* restrict dX, const int NB,
                         const int H, const int W, const int CIN, const int COUT, const int ciBegin,
                         const float alpha) {
    const int M = NB * H * W;
    const int ci0 = ciBegin + get_global_id(0) * RN;
    const int i0 = get_global_id(1) * RM;
    if (i0 >= M) return;
    int pn[RM], ph[RM], pw[RM];
#pragma unroll
    for (int r = 0; r < RM; ++r) SPLIT_PIXEL(min(i0 + r, M - 1), pn[r], ph[r], pw[r]);
    int cir[RN];
#pragma unroll
    for (int j = 0; j < RN; ++j) cir[j] = min(ci0 + j, CIN - 1);

    KT acc[RM][RN];
#pragma unroll
    for (int r = 0; r < RM; ++r)
#pragma unroll
        for (int j = 0; j < RN; ++j) acc[r][j] = (KT)(0.0f);

    for (int kh = 0; kh < KS; ++kh) {
        for (int kw = 0; kw < KS; ++kw) {
            // Output pixel q = p - (kh - P, kw - P) read input pixel p through tap (kh, kw); outside the image
            // the row reads Z (COUT zeros; masked or not, a zero gradient contributes nothing).
            const __global float* gr[RM];
#if MASK
            const __global float* yr[RM];
#endif
#pragma unroll
            for (int r = 0; r < RM; ++r) {
                const int hh = ph[r] - kh + P, ww = pw[r] - kw + P;
                const bool in = hh >= 0 && hh < H && ww >= 0 && ww < W;
                const int q = ((pn[r] * H + hh) * W + ww) * COUT;
                gr[r] = in ? dY + q : Z;
#if MASK
                yr[r] = in ? Yout + q : Z;
#endif
            }
            const __global float* wt = Wf + (kh * KS + kw) * CIN * COUT;
            for (int co = 0; co < COUT; co += VK) {
                KT b[RN];
#pragma unroll
                for (int j = 0; j < RN; ++j) b[j] = VEC_LOAD(VK, wt + cir[j] * COUT + co);
#pragma unroll
                for (int r = 0; r < RM; ++r) {
                    KT a = VEC_LOAD(VK, gr[r] + co);
#if MASK
                    a = MASKED(a, VEC_LOAD(VK, yr[r] + co), alpha);
#endif
#pragma unroll
                    for (int j = 0; j < RN; ++j) acc[r][j] = fma(a, b[j], acc[r][j]);
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < RM; ++r) {
        if (i0 + r >= M) continue;
#pragma unroll
        for (int j = 0; j < RN; ++j)
            if (ci0 + j < CIN) dX[(i0 + r) * CIN + ci0 + j] = VEC_SUM(VK, acc[r][j]);
    }
}

// Filter gradient over image rows [s * chunk, (s + 1) * chunk) (rows are (n, h) pairs), into
// Out[s * stride + (t * CIN + ci) * COUT + co] and, for db, Out[s * stride + KS*KS*CIN*COUT + co]
// (stride = KS*KS*CIN*COUT + COUT when db is computed). Work-item (co block, g, s): g < taps * ceil(CIN / RM)
// computes RM input channels of tap g / ceil(CIN / RM) x VW * NV output channels; g == that count (the
// last row of work-items, launched only with hasDb) sums db for its output channels instead.
// Sums run over blocks of `rowsPerSum` image rows added into a running total, so that a chunk of 100k pixels
// keeps the rounding error of short sums (the host then needs no second pass to split the sum).
// accumulate: Out += the result (only used when Out is dw itself, chunks == 1).
__kernel void conv_dw_blocked(__global const float* restrict X, __global const float* restrict dY,
                              __global const float* restrict Yout, __global float* restrict Out,
                              __global float* restrict dB, const int NB, const int H, const int W,
                              const int CIN, const int COUT, const int chunk, const int chunks,
                              const int rowsPerSum, const int stride, const int accumulate,
                              const float alpha) {
    const int j0 = get_global_id(0) * (VW * NV);
    const int cib = (CIN + RM - 1) / RM;
    const int g = get_global_id(1);
    const int s = get_global_id(2);
    if (s >= chunks) return;
    const int rowBegin = s * chunk;
    const int rowEnd = min(NB * H, rowBegin + chunk);
    __global float* out = Out + s * stride;

    if (g == KS * KS * cib) {
        // db[co] = sum over the chunk's pixels of g[p, co].
        VT tot[NV], acc[NV];
#pragma unroll
        for (int v = 0; v < NV; ++v) tot[v] = (VT)(0.0f);
        for (int r0 = rowBegin; r0 < rowEnd; r0 += rowsPerSum) {
#pragma unroll
            for (int v = 0; v < NV; ++v) acc[v] = (VT)(0.0f);
            const int r1 = min(rowEnd, r0 + rowsPerSum);
            for (int e = r0 * W; e < r1 * W; ++e) {
#pragma unroll
                for (int v = 0; v < NV; ++v) {
                    VT d = VEC_LOAD(VW, dY + e * COUT + j0 + v * VW);
#if MASK
                    d = MASKED(d, VEC_LOAD(VW, Yout + e * COUT + j0 + v * VW), alpha);
#endif
                    acc[v] += d;
                }
            }
#pragma unroll
            for (int v = 0; v < NV; ++v) tot[v] += acc[v];
        }
        __global float* db = chunks == 1 ? dB : out + KS * KS * CIN * COUT;
#pragma unroll
        for (int v = 0; v < NV; ++v) {
            VT value = tot[v];
            if (accumulate) value += VEC_LOAD(VW, db + j0 + v * VW);
            VEC_STORE(VW, value, db + j0 + v * VW);
        }
        return;
    }

    const int tap = g / cib;
    const int ci0 = (g - tap * cib) * RM;
    const int kh = tap / KS, kw = tap % KS;
    // Output columns w whose tap (kh, kw) lands inside the image: [wBegin, wEnd).
    const int wBegin = max(0, P - kw), wEnd = min(W, W + P - kw);

    int cir[RM];
#pragma unroll
    for (int r = 0; r < RM; ++r) cir[r] = min(ci0 + r, CIN - 1);

    VT tot[RM][NV], acc[RM][NV];
#pragma unroll
    for (int r = 0; r < RM; ++r)
#pragma unroll
        for (int v = 0; v < NV; ++v) tot[r][v] = (VT)(0.0f);

    for (int r0 = rowBegin; r0 < rowEnd; r0 += rowsPerSum) {
#pragma unroll
        for (int r = 0; r < RM; ++r)
#pragma unroll
            for (int v = 0; v < NV; ++v) acc[r][v] = (VT)(0.0f);
        const int r1 = min(rowEnd, r0 + rowsPerSum);
        for (int row = r0; row < r1; ++row) {
            const int n = row / H;
            const int h = row - n * H;
            const int hh = h + kh - P;
            if (hh < 0 || hh >= H) continue;  // the whole row reads zeros through this tap
#if CLAMP
            const __global float* xr = X + ((n * H + hh) * W + wBegin + kw - P) * CIN;
#else
            const __global float* xr = X + ((n * H + hh) * W + wBegin + kw - P) * CIN + ci0;
#endif
            const __global float* dyr = dY + (row * W + wBegin) * COUT + j0;
#if MASK
            const __global float* yr = Yout + (row * W + wBegin) * COUT + j0;
#endif
            for (int w = wBegin; w < wEnd; ++w) {
                VT b[NV];
#pragma unroll
                for (int v = 0; v < NV; ++v) {
                    b[v] = VEC_LOAD(VW, dyr + v * VW);
#if MASK
                    b[v] = MASKED(b[v], VEC_LOAD(VW, yr + v * VW), alpha);
#endif
                }
                dyr += COUT;
#if MASK
                yr += COUT;
#endif
#pragma unroll
                for (int r = 0; r < RM; ++r) {
#if CLAMP
                    const VT a = (VT)(xr[cir[r]]);
#else
                    const VT a = (VT)(xr[r]);
#endif
#pragma unroll
                    for (int v = 0; v < NV; ++v) acc[r][v] = fma(a, b[v], acc[r][v]);
                }
                xr += CIN;
            }
        }
#pragma unroll
        for (int r = 0; r < RM; ++r)
#pragma unroll
            for (int v = 0; v < NV; ++v) tot[r][v] += acc[r][v];
    }

    __global float* o = out + (tap * CIN + ci0) * COUT + j0;
#pragma unroll
    for (int r = 0; r < RM; ++r) {
        if (ci0 + r < CIN) {
#pragma unroll
            for (int v = 0; v < NV; ++v) {
                VT value = tot[r][v];
                if (accumulate) value += VEC_LOAD(VW, o + r * COUT + v * VW);
                VEC_STORE(VW, value, o + r * COUT + v * VW);
            }
        }
    }
}

// The filter gradient vectorised over VC input channels (CIN a multiple of VC), for output channel
// co0 + id0 (few output channels: the ones left over by conv_dw_blocked): work-item (co - co0, g, s) with
// g < taps * (CIN / VC) accumulates tap g / (CIN / VC) of its VC channels over the image rows of chunk s
// (taps are split across work-items so that a one-channel layer still has several); g == taps * (CIN / VC)
// (launched only with db) sums db[co] instead. Output layout, rowsPerSum and accumulate as in conv_dw_blocked.
__kernel void conv_dw_vec(__global const float* restrict X, __global const float* restrict dY,
                          __global const float* restrict Yout, __global float* restrict Out,
                          __global float* restrict dB, const int NB, const int H, const int W, const int CIN,
                          const int COUT, const int co0, const int chunk, const int chunks, const int rowsPerSum,
                          const int stride, const int accumulate, const float alpha) {
    const int co = co0 + get_global_id(0);
    const int cib = CIN / VC;
    const int g = get_global_id(1);
    const int s = get_global_id(2);
    if (s >= chunks) return;
    const int rowBegin = s * chunk;
    const int rowEnd = min(NB * H, rowBegin + chunk);
    __global float* out = Out + s * stride;

    if (g == KS * KS * cib) {
        float tot = 0.0f;
        for (int r0 = rowBegin; r0 < rowEnd; r0 += rowsPerSum) {
            // Four interleaved partial sums (independent adds), combined in a fixed order.
            float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            const int r1 = min(rowEnd, r0 + rowsPerSum);
            for (int e = r0 * W; e < r1 * W; ++e) {
                float d = dY[e * COUT + co];
#if MASK
                d = MASKED(d, Yout[e * COUT + co], alpha);
#endif
                acc[e & 3] += d;
            }
            tot += (acc[0] + acc[1]) + (acc[2] + acc[3]);
        }
        __global float* db = chunks == 1 ? dB : out + KS * KS * CIN * COUT;
        db[co] = accumulate ? db[co] + tot : tot;
        return;
    }

    const int tap = g / cib;
    const int ci0 = (g - tap * cib) * VC;
    const int kh = tap / KS, kw = tap % KS;
    const int wBegin = max(0, P - kw), wEnd = min(W, W + P - kw);
    CT tot = (CT)(0.0f);
    for (int r0 = rowBegin; r0 < rowEnd; r0 += rowsPerSum) {
        CT acc = (CT)(0.0f);
        const int r1 = min(rowEnd, r0 + rowsPerSum);
        for (int row = r0; row < r1; ++row) {
            const int n = row / H;
            const int h = row - n * H;
            const int hh = h + kh - P;
            if (hh < 0 || hh >= H) continue;
            const __global float* xr = X + ((n * H + hh) * W + kw - P) * CIN + ci0;
            const __global float* dyr = dY + row * W * COUT + co;
#if MASK
            const __global float* yr = Yout + row * W * COUT + co;
#endif
            // Four pixels at a time into independent accumulators (a single one would wait on each FMA).
            CT a4[4];
#pragma unroll
            for (int u = 0; u < 4; ++u) a4[u] = (CT)(0.0f);
            int w = wBegin;
            for (; w + 4 <= wEnd; w += 4) {
#pragma unroll
                for (int u = 0; u < 4; ++u) {
                    float gv = dyr[(w + u) * COUT];
#if MASK
                    gv = MASKED(gv, yr[(w + u) * COUT], alpha);
#endif
                    a4[u] = fma(VEC_LOAD(VC, xr + (w + u) * CIN), (CT)(gv), a4[u]);
                }
            }
            for (; w < wEnd; ++w) {
                float gv = dyr[w * COUT];
#if MASK
                gv = MASKED(gv, yr[w * COUT], alpha);
#endif
                a4[0] = fma(VEC_LOAD(VC, xr + w * CIN), (CT)(gv), a4[0]);
            }
            acc += (a4[0] + a4[1]) + (a4[2] + a4[3]);
        }
        tot += acc;
    }
    float values[VC];
    VEC_STORE(VC, tot, values);
    __global float* o = out + (tap * CIN + ci0) * COUT + co;
    for (int e = 0; e < VC; ++e) o[e * COUT] = accumulate ? o[e * COUT] + values[e] : values[e];
}

// The GPU passes that add up split sums (one work-item per output element e < total):
// conv_sum_slices: Y[e] = act(bias[e % C] + sum over s of parts[s * total + e]) (split-K forward / dx).
__kernel void conv_sum_slices(__global const float* restrict parts, __global const float* restrict bias,
                              __global float* restrict Y, const int total, const int C, const int slices,
                              const int hasBias, const float alpha) {
    const int e = get_global_id(0);
    if (e >= total) return;
    float sum = 0.0f;
    for (int s = 0; s < slices; ++s) sum += parts[s * total + e];
    float out = sum + (hasBias ? bias[e % C] : 0.0f);
#if ACT
    out = LEAKY(out, alpha);
#endif
    Y[e] = out;
}

// conv_sum_chunks: per-chunk filter gradients laid out [chunks][stride] (stride = dwCount + dbCount, db after
// dw): dw[e] (+)= sum over chunks for e < dwCount, db[e - dwCount] (+)= the same beyond.
__kernel void conv_sum_chunks(__global const float* restrict parts, __global float* restrict dW,
                              __global float* restrict dB, const int dwCount, const int stride, const int chunks,
                              const int accumulate) {
    const int e = get_global_id(0);
    if (e >= stride) return;
    float sum = 0.0f;
    for (int s = 0; s < chunks; ++s) sum += parts[s * stride + e];
    __global float* dst = e < dwCount ? dW + e : dB + (e - dwCount);
    *dst = accumulate ? *dst + sum : sum;
}

// conv_fwd_tiled: the forward convolution as an implicit product Y[M, COUT] = A[M, K] · B[K, COUT] with
// M = pixels, K = KS·KS·CIN and A[p, k] = x at pixel p shifted by tap k / CIN (zero outside the image), for
// GPUs: a work-group of (TN / 4) x (TM / 4) work-items computes a TM x TN tile of Y, staging TK-deep slices of
// A and B in local memory so that each input value is read from global memory once per tile instead of once
// per output channel block; each work-item accumulates 4 x 4 outputs, strided across the tile (rows
// ty + i·TM/4, columns tx + j·TN/4) so that local reads are conflict-free and global stores coalesce.
// With -DFLIP=1 this is the input gradient: A is dy (masked by act'(y) with -DMASK=1, Yout the saved y) and B
// is read straight from the forward filter w [KS, KS, COUT, CIN] (taps reversed, in/out swapped:
// B[(tap, c), n] = w[KS·KS-1-tap, n, c]), so no flipped copy is made.
// Rows past M and columns past COUT are computed from zeros and not stored; K need not divide by TK.
// Split K: work-group z sums k in [z·KSPLIT, (z + 1)·KSPLIT) into its own [M, COUT] slice of Y, which
// conv_sum_slices adds up (with the bias and activation; the host then passes hasBias 0 and ACT 0 here), so
// that small images with many channels (few tiles, long sums) still fill the device. One slice (KSPLIT >= K)
// writes Y itself with the epilogue.
#ifndef TM
#define TM 64
#endif
#ifndef TN
#define TN 64
#endif
#ifndef FLIP
#define FLIP 0
#endif
#define TK 16
#define TILE_THREADS ((TM / 4) * (TN / 4))
#define A_LOADS (TM * TK / TILE_THREADS)

__kernel void conv_fwd_tiled(__global const float* restrict X, __global const float* restrict Wf,
                             __global const float* restrict bias, __global const float* restrict Yout,
                             __global float* restrict Y, const int NB, const int H, const int W, const int CIN,
                             const int COUT, const int hasBias, const int KSPLIT, const float alpha) {
    __local float As[TK][TM + 1];
    __local float Bs[TK][TN];
    const int M = NB * H * W, K = KS * KS * CIN;
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int tid = ty * (TN / 4) + tx;
    const int n0 = get_group_id(0) * TN, m0 = get_group_id(1) * TM;
    const int split = get_group_id(2);
    const int kBegin = split * KSPLIT, kEnd = min(K, kBegin + KSPLIT);

    // This work-item always loads A column kk = tid % TK of rows tid / TK + s·(TILE_THREADS / TK).
    const int akk = tid % TK;
    int an[A_LOADS], ah[A_LOADS], aw[A_LOADS];
    bool arow[A_LOADS];
#pragma unroll
    for (int s = 0; s < A_LOADS; ++s) {
        const int p = m0 + tid / TK + s * (TILE_THREADS / TK);
        arow[s] = p < M;
        SPLIT_PIXEL(min(p, M - 1), an[s], ah[s], aw[s]);
    }

    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

    for (int k0 = kBegin; k0 < kEnd; k0 += TK) {
        const int k = k0 + akk;
        const int tap = k / CIN, ci = k - tap * CIN;
        const int kh = tap / KS, kw = tap - kh * KS;
#pragma unroll
        for (int s = 0; s < A_LOADS; ++s) {
            const int hh = ah[s] + kh - P, ww = aw[s] + kw - P;
            float v = 0.0f;
            if (arow[s] && k < kEnd && hh >= 0 && hh < H && ww >= 0 && ww < W) {
                const int e = ((an[s] * H + hh) * W + ww) * CIN + ci;
                v = X[e];
#if FLIP && MASK
                v = MASKED(v, Yout[e], alpha);
#endif
            }
            As[akk][tid / TK + s * (TILE_THREADS / TK)] = v;
        }
        for (int e = tid; e < TK * TN; e += TILE_THREADS) {
            const int kk = e / TN, c = e - kk * TN;
            const int kb = k0 + kk, n = n0 + c;
            float v = 0.0f;
            if (kb < kEnd && n < COUT) {
#if FLIP
                const int tb = kb / CIN, cb = kb - tb * CIN;
                v = Wf[((KS * KS - 1 - tb) * COUT + n) * CIN + cb];
#else
                v = Wf[kb * COUT + n];
#endif
            }
            Bs[kk][c] = v;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll
        for (int kk = 0; kk < TK; ++kk) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) a[i] = As[kk][ty + i * (TM / 4)];
#pragma unroll
            for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tx + j * (TN / 4)];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    __global float* out = Y + split * M * COUT;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int p = m0 + ty + i * (TM / 4);
        if (p >= M) continue;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int n = n0 + tx + j * (TN / 4);
            if (n < COUT) {
                float v = acc[i][j] + (hasBias ? bias[n] : 0.0f);
#if ACT
                v = LEAKY(v, alpha);
#endif
                out[p * COUT + n] = v;
            }
        }
    }
}
