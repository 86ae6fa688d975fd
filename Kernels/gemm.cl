// Matrix products C = alpha * op(A) * op(B) + beta * C (row-major; A stored K x M when transposed,
// B stored N x K when transposed). beta == 0 never reads C (it may hold NaN).

// gemm_blocked: register blocking with explicit vectors, the form CPU OpenCL compilers (PoCL) turn into
// wide SIMD: each work-item computes RM rows x (VW * NV) columns of C in VW-wide accumulators, reading
// A as scalars (broadcast) and B as VW-wide rows. B must be K x N (not transposed; the host transposes
// a transposed B first). The host launches one work-item per column block it covers (the leftover
// columns go to gemm_general); rows past M are clamped on load and skipped on store, so M is arbitrary.
// Build options: -DRM=<rows> -DVW=<4|8|16> -DNV=<vectors> -DTRANS_A=<0|1>.
#ifndef RM
#define RM 8
#endif
#ifndef VW
#define VW 16
#endif
#ifndef NV
#define NV 1
#endif
#ifndef TRANS_A
#define TRANS_A 0
#endif
#define VT VEC_TYPE(VW)

__kernel void gemm_blocked(__global const float* restrict A, __global const float* restrict B,
                           __global float* restrict C, const int M, const int N, const int K, const float alpha,
                           const float beta) {
    const int j0 = get_global_id(0) * (VW * NV);
    const int i0 = get_global_id(1) * RM;
    if (i0 >= M) return;

    VT acc[RM][NV];
#pragma unroll
    for (int r = 0; r < RM; ++r)
#pragma unroll
        for (int v = 0; v < NV; ++v) acc[r][v] = (VT)(0.0f);

    // Offsets of each row's first element of op(A), and the step between consecutive k.
    int aoff[RM];
#pragma unroll
    for (int r = 0; r < RM; ++r) aoff[r] = TRANS_A ? min(i0 + r, M - 1) : min(i0 + r, M - 1) * K;
    const int astep = TRANS_A ? M : 1;

    const __global float* bp = B + j0;
    for (int kk = 0; kk < K; ++kk) {
        VT b[NV];
#pragma unroll
        for (int v = 0; v < NV; ++v) b[v] = VEC_LOAD(VW, bp + v * VW);
        bp += N;
        const int ak = kk * astep;
#pragma unroll
        for (int r = 0; r < RM; ++r) {
            const VT a = (VT)(A[aoff[r] + ak]);
#pragma unroll
            for (int v = 0; v < NV; ++v) acc[r][v] = fma(a, b[v], acc[r][v]);
        }
    }

#pragma unroll
    for (int r = 0; r < RM; ++r) {
        if (i0 + r < M) {
            __global float* cp = C + (i0 + r) * N + j0;
#pragma unroll
            for (int v = 0; v < NV; ++v) {
                VT out = (VT)(alpha) * acc[r][v];
                if (beta != 0.0f) out = fma((VT)(beta), VEC_LOAD(VW, cp + v * VW), out);
                VEC_STORE(VW, out, cp + v * VW);
            }
        }
    }
}

// gemm_nt: C = alpha * A * B^T + beta * C with A stored M x K and B stored N x K (both rows contiguous
// along k), so every product is a dot product: each work-item computes RM rows x RN columns of C with
// RM * RN accumulators of VK-wide partial sums along k, summed horizontally at the end (k % VK leftovers
// in scalars). Rows and columns past M and N are clamped on load and skipped on store, so no size needs
// to be a multiple of anything. Computes columns [col0, N). Build options: -DRM -DRN -DVK.
// Launch: (ceil((N - col0) / RN), ceil(M / RM)).
#ifndef RN
#define RN 4
#endif
#ifndef VK
#define VK 16
#endif
#define KT VEC_TYPE(VK)

__kernel void gemm_nt(__global const float* restrict A, __global const float* restrict B,
                      __global float* restrict C, const int M, const int N, const int K, const float alpha,
                      const float beta, const int col0) {
    const int j0 = col0 + get_global_id(0) * RN;
    const int i0 = get_global_id(1) * RM;
    if (i0 >= M) return;
    const __global float* ap[RM];
    const __global float* bp[RN];
#pragma unroll
    for (int r = 0; r < RM; ++r) ap[r] = A + min(i0 + r, M - 1) * K;
#pragma unroll
    for (int c = 0; c < RN; ++c) bp[c] = B + min(j0 + c, N - 1) * K;

    KT acc[RM][RN];
#pragma unroll
    for (int r = 0; r < RM; ++r)
#pragma unroll
        for (int c = 0; c < RN; ++c) acc[r][c] = (KT)(0.0f);
    int kk = 0;
    for (; kk + VK <= K; kk += VK) {
        KT a[RM];
#pragma unroll
        for (int r = 0; r < RM; ++r) a[r] = VEC_LOAD(VK, ap[r] + kk);
#pragma unroll
        for (int c = 0; c < RN; ++c) {
            const KT b = VEC_LOAD(VK, bp[c] + kk);
#pragma unroll
            for (int r = 0; r < RM; ++r) acc[r][c] = fma(a[r], b, acc[r][c]);
        }
    }
    float sum[RM][RN];
#pragma unroll
    for (int r = 0; r < RM; ++r)
#pragma unroll
        for (int c = 0; c < RN; ++c) sum[r][c] = VEC_SUM(VK, acc[r][c]);
    for (; kk < K; ++kk) {
#pragma unroll
        for (int r = 0; r < RM; ++r)
#pragma unroll
            for (int c = 0; c < RN; ++c) sum[r][c] = fma(ap[r][kk], bp[c][kk], sum[r][c]);
    }
#pragma unroll
    for (int r = 0; r < RM; ++r) {
        if (i0 + r >= M) continue;
#pragma unroll
        for (int c = 0; c < RN; ++c) {
            if (j0 + c >= N) continue;
            __global float* cp = C + (i0 + r) * N + j0 + c;
            float out = alpha * sum[r][c];
            if (beta != 0.0f) out = fma(beta, *cp, out);
            *cp = out;
        }
    }
}

// gemm_general: one element of C per work-item, any transposes and sizes; computes columns
// [col0, N). Used for the columns the blocked kernel does not cover and for small products.
__kernel void gemm_general(__global const float* restrict A, __global const float* restrict B,
                           __global float* restrict C, const int M, const int N, const int K, const float alpha,
                           const float beta, const int transA, const int transB, const int col0) {
    const int j = col0 + get_global_id(0);
    const int i = get_global_id(1);
    if (i >= M) return;
    const __global float* ap = A + (transA ? i : i * K);
    const int as = transA ? M : 1;
    const __global float* bp = B + (transB ? j * K : j);
    const int bs = transB ? 1 : N;
    float acc0 = 0.0f, acc1 = 0.0f;
    int kk = 0;
    for (; kk + 1 < K; kk += 2) {
        acc0 = fma(ap[kk * as], bp[kk * bs], acc0);
        acc1 = fma(ap[(kk + 1) * as], bp[(kk + 1) * bs], acc1);
    }
    if (kk < K) acc0 = fma(ap[kk * as], bp[kk * bs], acc0);
    float out = alpha * (acc0 + acc1);
    if (beta != 0.0f) out = fma(beta, C[i * N + j], out);
    C[i * N + j] = out;
}

// C = beta * C (alpha * op(A) * op(B) with K == 0 is zero); beta == 0 writes zeros without reading C.
__kernel void gemm_scale(__global float* C, const int n, const float beta) {
    const int i = get_global_id(0);
    if (i >= n) return;
    C[i] = beta == 0.0f ? 0.0f : beta * C[i];
}
