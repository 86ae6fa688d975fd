// Sums and arg-reductions.

// reduce_sum: x viewed as kept axes (up to three: sizes O/(k1*k2), k1, k2 with x-strides ks0..ks2), two
// outer reduced axes (r0, r1 with strides rs0, rs1) and an inner reduced axis (innerLen, innerStride).
// Work-item (o, c) sums output o over chunk c of the inner reduced axis and writes out[c * O + o]: with
// one chunk that is the result, with several the host sums the chunks in a second pass.
// Dimension 0 of the launch is the output index, so neighbouring work-items read neighbouring columns
// (the bias-gradient case, [rows, columns] reduced over rows, is a set of unit-stride streams).
__kernel void reduce_sum(__global const float* x, __global float* out, const int O, const int k1, const int k2,
                         const int ks0, const int ks1, const int ks2, const int r0, const int rs0, const int r1,
                         const int rs1, const int innerLen, const int innerStride, const int chunk,
                         const int chunks) {
    const int o = get_global_id(0);
    const int c = get_global_id(1);
    if (c >= chunks) return;
    int t = o;
    const int i2 = t % k2;
    t /= k2;
    const int i1 = t % k1;
    const int i0 = t / k1;
    const int begin = c * chunk;
    const int end = min(innerLen, begin + chunk);
    const __global float* base = x + i0 * ks0 + i1 * ks1 + i2 * ks2;
    float acc0 = 0.0f, acc1 = 0.0f;
    for (int a = 0; a < r0; ++a) {
        for (int b = 0; b < r1; ++b) {
            const __global float* p = base + a * rs0 + b * rs1;
            int j = begin;
            for (; j + 1 < end; j += 2) {
                acc0 += p[j * innerStride];
                acc1 += p[(j + 1) * innerStride];
            }
            if (j < end) acc0 += p[j * innerStride];
        }
    }
    out[c * O + o] = acc0 + acc1;
}

// out[o, i] = index of the max (findMax != 0) or min of x[o, :, i]; the first such index on ties.
__kernel void arg_reduce(__global const float* x, __global float* out, const int outer, const int axis,
                         const int inner, const int findMax) {
    const int i = get_global_id(0);
    const int o = get_global_id(1);
    if (o >= outer) return;
    const __global float* p = x + o * axis * inner + i;
    float best = p[0];
    int index = 0;
    for (int a = 1; a < axis; ++a) {
        const float v = p[a * inner];
        if (findMax ? (v > best) : (v < best)) {
            best = v;
            index = a;
        }
    }
    out[o * inner + i] = (float)index;
}
