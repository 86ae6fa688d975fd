// Data movement: axis-range copies, reversal, row gathers, one-hot, 2-D transpose.
// Two-dimensional launches: dimension 0 is exact, dimension 1 is guarded (see common.h).

// Viewing src as [outer, srcAxis, inner] and dst as [outer, dstAxis, inner]: for each o the block of
// length*inner contiguous elements starting at row srcStart is copied to row dstStart.
__kernel void copy_axis_range(__global const float* src, __global float* dst, const int outer, const int srcAxis,
                              const int dstAxis, const int inner, const int srcStart, const int dstStart,
                              const int block) {
    const int q = get_global_id(0);
    const int o = get_global_id(1);
    if (o >= outer) return;
    dst[(o * dstAxis + dstStart) * inner + q] = src[(o * srcAxis + srcStart) * inner + q];
}

// out[o, i, :] = x[o, axis - 1 - i, :]
__kernel void reverse_axis(__global const float* x, __global float* out, const int outer, const int axis,
                           const int inner) {
    const int q = get_global_id(0);
    const int o = get_global_id(1);
    if (o >= outer) return;
    const int i = q / inner;
    const int t = q - i * inner;
    out[(o * axis + i) * inner + t] = x[(o * axis + (axis - 1 - i)) * inner + t];
}

// out[r, :] = table[index[r], :]; an index outside [0, tableRows) (or NaN) is clamped, never read out of
// bounds (the host-side checks report bad indices; the kernel only has to stay safe).
__kernel void gather_rows(__global const float* table, __global const float* index, __global float* out,
                          const int rows, const int tableRows, const int columns) {
    const int c = get_global_id(0);
    const int r = get_global_id(1);
    if (r >= rows) return;
    const float f = index[r];
    int k = 0;
    if (f >= (float)tableRows) k = tableRows - 1;
    else if (f >= 0.0f) k = (int)f;
    out[r * columns + c] = table[k * columns + c];
}

// out[r, c] = (c == index[r]) ? 1 : 0
__kernel void one_hot(__global const float* index, __global float* out, const int rows, const int depth) {
    const int c = get_global_id(0);
    const int r = get_global_id(1);
    if (r >= rows) return;
    out[r * depth + c] = ((float)c == index[r]) ? 1.0f : 0.0f;
}

// Batched 2-D transpose: out[b, c, r] = in[b', r, c] for in [batches, rows, cols], where b' = b, or
// batches - 1 - b with reverse != 0 (the input-gradient filter of a convolution is the HWIO filter with
// its taps reversed and each [cin, cout] slice transposed). Work-item (column tile, row tile, b) moves a
// 16 x 16 tile, reading whole rows of it and writing whole rows of the output tile, so both sides touch
// few cache lines. Launch: (ceil(cols / 16), ceil(rows / 16), batches).
__kernel void transpose(__global const float* in, __global float* out, const int rows, const int cols,
                        const int batches, const int reverse) {
    const int c0 = get_global_id(0) * 16;
    const int r0 = get_global_id(1) * 16;
    const int b = get_global_id(2);
    if (b >= batches) return;
    const int source = reverse ? batches - 1 - b : b;
    const __global float* src = in + source * rows * cols;
    __global float* dst = out + b * rows * cols;
    const int r1 = min(r0 + 16, rows), c1 = min(c0 + 16, cols);
    for (int r = r0; r < r1; ++r)
        for (int c = c0; c < c1; ++c) dst[c * rows + r] = src[r * cols + c];
}
