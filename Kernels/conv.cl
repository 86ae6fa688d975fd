// 2-D convolution, NHWC input, HWIO filter ([KS, KS, CIN, COUT]), stride 1, 'same' zero padding.
//
// The input is first copied into a zero-padded image Xp [N, H + 2P, W + 2P, CIN] (pad_nhwc; for 1x1 the
// input itself), so the convolution is a product with an implicit im2col matrix and no bounds checks:
//   y[p, co] = sum over taps (kh, kw) and ci of Xp[base(p) + (kh * Wp + kw) * CIN + ci] * w[kh, kw, ci, co]
// where base(p) is the padded address of output pixel p = (n, h, w). Nothing is materialised.
// - conv_fwd_blocked: register-blocked like gemm_blocked (RM pixels x VW * NV output channels per
//   work-item, VW-wide accumulators); the host launches one work-item per column block it covers.
// - conv_fwd_direct: one output channel of one image row per work-item, vectorised over input channels
//   (VC wide) against a transposed filter [COUT, KS, KS, CIN]; for few output channels (e.g. 1) and
//   the channels left over by the blocked kernel.
// - The input gradient is the forward convolution of the padded dy with the flipped, in/out-swapped
//   filter wf[kh, kw, co, ci] = w[KS-1-kh, KS-1-kw, ci, co] (the `transpose` kernel of copy.cl with its
//   taps reversed).
// - The filter gradient dw[(kh, kw, ci), co] = sum over pixels p of Xp[base(p) + tap + ci] * dy[p, co]
//   is computed per chunk of image rows (a split over the long pixel sum, for parallelism) into partial
//   sums the host adds up: conv_dw_blocked (vectors over co) or conv_dw_vec (vectors over ci).
// Build options: -DKS=<1|3> and, per kernel, -DRM -DVW -DNV or -DVC.
#ifndef KS
#define KS 3
#endif
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
#define VT VEC_TYPE(VW)
#define CT VEC_TYPE(VC)

// Xp[n, hp, wp, c] = X[n, hp - P, wp - P, c], zero outside. A padded row (n, hp) is Wp * C floats: P * C
// zeros, the W * C floats of the input row (or zeros), P * C zeros. Work-item (segment, row) writes
// floats [segment * len, segment * len + len) of a row with plain loops: CPU devices take whole rows
// (len = Wp * C, one loop per row is 10x faster on PoCL than one work-item per float), GPUs single floats.
__kernel void pad_nhwc(__global const float* X, __global float* Xp, const int NB, const int H, const int W,
                       const int C, const int P, const int len) {
    const int row = get_global_id(1);
    const int Hp = H + 2 * P, Wp = W + 2 * P;
    if (row >= NB * Hp) return;
    const int n = row / Hp;
    const int h = row - n * Hp - P;
    const int q0 = get_global_id(0) * len;
    const int q1 = min(q0 + len, Wp * C);
    __global float* dst = Xp + row * Wp * C;
    if (h < 0 || h >= H) {
        for (int q = q0; q < q1; ++q) dst[q] = 0.0f;
        return;
    }
    const int a = P * C, b = (P + W) * C;
    const __global float* src = X + ((n * H + h) * W) * C;
    for (int q = q0; q < min(q1, a); ++q) dst[q] = 0.0f;
    for (int q = max(q0, a); q < min(q1, b); ++q) dst[q] = src[q - a];
    for (int q = max(q0, b); q < q1; ++q) dst[q] = 0.0f;
}

// Padded address of output pixel p.
int padded_base(const int p, const int H, const int W, const int Hp, const int Wp, const int CIN) {
    const int w = p % W;
    const int t = p / W;
    const int h = t % H;
    const int n = t / H;
    return ((n * Hp + h) * Wp + w) * CIN;
}

__kernel void conv_fwd_blocked(__global const float* restrict Xp, __global const float* restrict Wf,
                               __global const float* restrict bias, __global float* restrict Y, const int NB,
                               const int H, const int W, const int CIN, const int COUT, const int hasBias) {
    const int M = NB * H * W;
    const int j0 = get_global_id(0) * (VW * NV);
    const int i0 = get_global_id(1) * RM;
    if (i0 >= M) return;
    const int Hp = H + KS - 1, Wp = W + KS - 1;

    int xb[RM];
#pragma unroll
    for (int r = 0; r < RM; ++r) xb[r] = padded_base(min(i0 + r, M - 1), H, W, Hp, Wp, CIN);

    VT acc[RM][NV];
#pragma unroll
    for (int r = 0; r < RM; ++r)
#pragma unroll
        for (int v = 0; v < NV; ++v) acc[r][v] = (VT)(0.0f);

    for (int kh = 0; kh < KS; ++kh) {
        for (int kw = 0; kw < KS; ++kw) {
            const int toff = (kh * Wp + kw) * CIN;
            const __global float* wp = Wf + (kh * KS + kw) * CIN * COUT + j0;
            for (int ci = 0; ci < CIN; ++ci) {
                VT b[NV];
#pragma unroll
                for (int v = 0; v < NV; ++v) b[v] = VEC_LOAD(VW, wp + v * VW);
                wp += COUT;
#pragma unroll
                for (int r = 0; r < RM; ++r) {
                    const VT a = (VT)(Xp[xb[r] + toff + ci]);
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
            for (int v = 0; v < NV; ++v) VEC_STORE(VW, acc[r][v] + bv[v], yp + v * VW);
        }
    }
}

// Wt: the filter transposed to [COUT, KS, KS, CIN]; CIN must be a multiple of VC. Work-item
// (co - co0, image row n * H + h) computes output channel co of the W pixels of that row.
__kernel void conv_fwd_direct(__global const float* restrict Xp, __global const float* restrict Wt,
                              __global const float* restrict bias, __global float* restrict Y, const int NB,
                              const int H, const int W, const int CIN, const int COUT, const int co0,
                              const int hasBias) {
    const int co = co0 + get_global_id(0);
    const int row = get_global_id(1);
    if (row >= NB * H) return;
    const int Hp = H + KS - 1, Wp = W + KS - 1;
    const int n = row / H;
    const int h = row - n * H;
    const __global float* xrow = Xp + (n * Hp + h) * Wp * CIN;
    const __global float* wco = Wt + co * KS * KS * CIN;
    const float b = hasBias ? bias[co] : 0.0f;
    __global float* yrow = Y + row * W * COUT + co;
    for (int w = 0; w < W; ++w) {
        CT acc = (CT)(0.0f);
        for (int kh = 0; kh < KS; ++kh) {
            for (int kw = 0; kw < KS; ++kw) {
                const __global float* xr = xrow + ((kh * Wp) + w + kw) * CIN;
                const __global float* wr = wco + (kh * KS + kw) * CIN;
                for (int ci = 0; ci < CIN; ci += VC) acc = fma(VEC_LOAD(VC, xr + ci), VEC_LOAD(VC, wr + ci), acc);
            }
        }
        yrow[w * COUT] = VEC_SUM(VC, acc) + b;
    }
}

// Partial filter gradient over image rows [s * chunk, (s + 1) * chunk) (rows are (n, h) pairs), written
// to Out[s, (tap * CIN + ci) * COUT + co]. Work-item (co block, tap * ceil(CIN / RM) + ci block, s)
// computes RM input channels x VW * NV output channels; the host launches as many co blocks as it wants
// covered.
__kernel void conv_dw_blocked(__global const float* restrict Xp, __global const float* restrict dY,
                              __global float* restrict Out, const int NB, const int H, const int W,
                              const int CIN, const int COUT, const int chunk, const int chunks) {
    const int j0 = get_global_id(0) * (VW * NV);
    const int cib = (CIN + RM - 1) / RM;
    const int g = get_global_id(1);
    const int tap = g / cib;
    const int s = get_global_id(2);
    if (s >= chunks) return;
    const int ci0 = (g - tap * cib) * RM;
    const int kh = tap / KS, kw = tap % KS;
    const int Hp = H + KS - 1, Wp = W + KS - 1;
    const int rowBegin = s * chunk;
    const int rowEnd = min(NB * H, rowBegin + chunk);

    int cir[RM];
#pragma unroll
    for (int r = 0; r < RM; ++r) cir[r] = min(ci0 + r, CIN - 1);

    VT acc[RM][NV];
#pragma unroll
    for (int r = 0; r < RM; ++r)
#pragma unroll
        for (int v = 0; v < NV; ++v) acc[r][v] = (VT)(0.0f);

    for (int row = rowBegin; row < rowEnd; ++row) {
        const int n = row / H;
        const int h = row - n * H;
        const __global float* xr = Xp + ((n * Hp + h + kh) * Wp + kw) * CIN;
        const __global float* dyr = dY + row * W * COUT + j0;
        for (int w = 0; w < W; ++w) {
            VT b[NV];
#pragma unroll
            for (int v = 0; v < NV; ++v) b[v] = VEC_LOAD(VW, dyr + v * VW);
            dyr += COUT;
#pragma unroll
            for (int r = 0; r < RM; ++r) {
                const VT a = (VT)(xr[cir[r]]);
#pragma unroll
                for (int v = 0; v < NV; ++v) acc[r][v] = fma(a, b[v], acc[r][v]);
            }
            xr += CIN;
        }
    }

    __global float* out = Out + s * (KS * KS * CIN * COUT) + (tap * CIN + ci0) * COUT + j0;
#pragma unroll
    for (int r = 0; r < RM; ++r) {
        if (ci0 + r < CIN) {
#pragma unroll
            for (int v = 0; v < NV; ++v) VEC_STORE(VW, acc[r][v], out + r * COUT + v * VW);
        }
    }
}

// The filter gradient vectorised over VC input channels (CIN a multiple of VC), for output channel
// co0 + id0: work-item (co - co0, ci block, s) accumulates all KS * KS taps of its VC channels over the
// image rows of chunk s, reading each dy value once.
__kernel void conv_dw_vec(__global const float* restrict Xp, __global const float* restrict dY,
                          __global float* restrict Out, const int NB, const int H, const int W, const int CIN,
                          const int COUT, const int co0, const int chunk, const int chunks) {
    const int co = co0 + get_global_id(0);
    const int ci0 = get_global_id(1) * VC;
    const int s = get_global_id(2);
    if (s >= chunks) return;
    const int Hp = H + KS - 1, Wp = W + KS - 1;
    const int rowBegin = s * chunk;
    const int rowEnd = min(NB * H, rowBegin + chunk);
    CT acc[KS * KS];
#pragma unroll
    for (int t = 0; t < KS * KS; ++t) acc[t] = (CT)(0.0f);
    for (int row = rowBegin; row < rowEnd; ++row) {
        const int n = row / H;
        const int h = row - n * H;
        const __global float* xr = Xp + ((n * Hp + h) * Wp) * CIN + ci0;
        const __global float* dyr = dY + row * W * COUT + co;
        for (int w = 0; w < W; ++w) {
            const CT g = (CT)(dyr[w * COUT]);
#pragma unroll
            for (int kh = 0; kh < KS; ++kh)
#pragma unroll
                for (int kw = 0; kw < KS; ++kw)
                    acc[kh * KS + kw] = fma(VEC_LOAD(VC, xr + ((kh * Wp) + w + kw) * CIN), g, acc[kh * KS + kw]);
        }
    }
    __global float* out = Out + s * (KS * KS * CIN * COUT) + ci0 * COUT + co;
#pragma unroll
    for (int t = 0; t < KS * KS; ++t) {
        float values[VC];
        VEC_STORE(VC, acc[t], values);
        for (int e = 0; e < VC; ++e) out[(t * CIN + e) * COUT] = values[e];
    }
}

// conv_fwd_tiled: the forward convolution as an implicit product Y[M, COUT] = A[M, K] · B[K, COUT] with
// M = pixels, K = KS·KS·CIN and A[p, k] = Xp[base(p) + toff(k)], for GPUs: a work-group of
// (TN / 4) x (TM / 4) work-items computes a TM x TN tile of Y, staging TK-deep slices of A and B in local
// memory so that each input value is read from global memory once per tile instead of once per output
// channel block; each work-item accumulates 4 x 4 outputs, strided across the tile (rows ty + i·TM/4,
// columns tx + j·TN/4) so that local reads are conflict-free and global stores coalesce.
// With -DFLIP=1 B is the input gradient's filter read straight from the forward filter w [KS, KS, COUT, CIN]
// (taps reversed, in/out swapped: B[(tap, c), n] = w[KS·KS-1-tap, n, c]), so no flipped copy is made.
// Rows past M and columns past COUT are computed from zeros and not stored; K need not divide by TK.
// Split K: work-group z sums k in [z·KSPLIT, (z + 1)·KSPLIT) into its own [M, COUT] slice of Y (the host adds
// the slices up; only slice 0 adds the bias), so that small images with many channels (few tiles, long
// sums) still fill the device. One slice (KSPLIT >= K) writes Y itself.
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

__kernel void conv_fwd_tiled(__global const float* restrict Xp, __global const float* restrict Wf,
                             __global const float* restrict bias, __global float* restrict Y, const int NB,
                             const int H, const int W, const int CIN, const int COUT, const int hasBias,
                             const int KSPLIT) {
    __local float As[TK][TM + 1];
    __local float Bs[TK][TN];
    const int M = NB * H * W, K = KS * KS * CIN;
    const int Hp = H + KS - 1, Wp = W + KS - 1;
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int tid = ty * (TN / 4) + tx;
    const int n0 = get_group_id(0) * TN, m0 = get_group_id(1) * TM;
    const int split = get_group_id(2);
    const int kBegin = split * KSPLIT, kEnd = min(K, kBegin + KSPLIT);

    // This work-item always loads A column kk = tid % TK of rows tid / TK + s·(TILE_THREADS / TK).
    const int akk = tid % TK;
    int abase[A_LOADS];
    bool arow[A_LOADS];
#pragma unroll
    for (int s = 0; s < A_LOADS; ++s) {
        const int p = m0 + tid / TK + s * (TILE_THREADS / TK);
        arow[s] = p < M;
        abase[s] = padded_base(min(p, M - 1), H, W, Hp, Wp, CIN);
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
        const int toff = (kh * Wp + kw) * CIN + ci;
#pragma unroll
        for (int s = 0; s < A_LOADS; ++s)
            As[akk][tid / TK + s * (TILE_THREADS / TK)] = (arow[s] && k < kEnd) ? Xp[abase[s] + toff] : 0.0f;
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
    const bool addBias = hasBias && split == 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int p = m0 + ty + i * (TM / 4);
        if (p >= M) continue;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int n = n0 + tx + j * (TN / 4);
            if (n < COUT) out[p * COUT + n] = acc[i][j] + (addBias ? bias[n] : 0.0f);
        }
    }
}
