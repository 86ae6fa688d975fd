// Counter-based random numbers, bit-identical to RandomBits in Op.swift: element i uses counter
// offset + i (uniform, dropout) or counters 2(offset + i) and 2(offset + i) + 1 (normal).
// All arithmetic on the counter is 64-bit and wraps, as Swift's &+ and &*.
// Each work-item computes 8 consecutive elements with 8-wide vectors (CPU OpenCL compilers vectorise
// 64-bit multiplies and math built-ins only on explicit vectors); the last one stores only up to n.
#ifdef cl_khr_fp64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

// The top 24 bits of the hash of each counter, times 2^-24: exact in float32.
float8 acai_uniform8(const ulong seed, const ulong8 counter) {
    ulong8 z = seed + counter * 0x9E3779B97F4A7C15UL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
    z = z ^ (z >> 31);
    const uint8 bits = convert_uint8(z >> 32);
    return convert_float8(bits >> 8) * (1.0f / 16777216.0f);
}

// Counters offset + i0 + 0..7.
ulong8 acai_counters8(const ulong offset, const int i0) {
    return (ulong8)(offset + (ulong)i0) + (ulong8)(0UL, 1UL, 2UL, 3UL, 4UL, 5UL, 6UL, 7UL);
}

void acai_store8(__global float* out, const int n, const int i0, const float8 values) {
    if (i0 + 8 <= n) {
        vstore8(values, 0, out + i0);
    } else {
        float tail[8];
        vstore8(values, 0, tail);
        for (int e = 0; e < n - i0; ++e) out[i0 + e] = tail[e];
    }
}

__kernel void random_uniform(__global float* out, const int n, const ulong seed, const ulong offset) {
    const int i0 = get_global_id(0) * 8;
    if (i0 >= n) return;
    acai_store8(out, n, i0, acai_uniform8(seed, acai_counters8(offset, i0)));
}

__kernel void random_normal(__global float* out, const int n, const ulong seed, const ulong offset) {
    const int i0 = get_global_id(0) * 8;
    if (i0 >= n) return;
    const ulong8 index = acai_counters8(offset, i0);
    const float8 u1 = acai_uniform8(seed, 2UL * index) + (1.0f / 16777216.0f);
    const float8 u2 = acai_uniform8(seed, 2UL * index + 1UL);
    // 2 * Float.pi in Swift: Float.pi is rounded toward zero (0x1.921fb4p+1), not M_PI_F.
    const float8 angle = 0x1.921fb4p+2f * u2;
#ifdef cl_khr_fp64
    // log and cos in double, rounded once to float: the correctly rounded float result, which is what
    // the host's logf/cosf return in all but rare cases (OpenCL's float log/cos may be off by ulps).
    const float8 logU1 = convert_float8(log(convert_double8(u1)));
    const float8 cosAngle = convert_float8(cos(convert_double8(angle)));
#else
    const float8 logU1 = log(u1);
    const float8 cosAngle = cos(angle);
#endif
    acai_store8(out, n, i0, sqrt(-2.0f * logU1) * cosAngle);
}

// scale = 1/keep, computed on the host so it is rounded exactly as there.
__kernel void random_dropout(__global float* out, const int n, const ulong seed, const ulong offset,
                             const float keep, const float scale) {
    const int i0 = get_global_id(0) * 8;
    if (i0 >= n) return;
    const float8 u = acai_uniform8(seed, acai_counters8(offset, i0));
    acai_store8(out, n, i0, select((float8)(0.0f), (float8)(scale), u < keep));
}
