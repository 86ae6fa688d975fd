// 2x2 average pooling and 2x nearest-neighbour upsampling, NHWC, with their gradients.
// Launch: (C, output width, N * output height); only the last dimension is guarded (see common.h), and
// no index needs a division (CPU compilers vectorise across dimension 0, where integer division is slow).
// H, W are the sizes named in each comment.

// x: [N, H, W, C] (H, W even) -> y: [N, H/2, W/2, C]
__kernel void avgpool2x2(__global const float* x, __global float* y, const int NB, const int H, const int W,
                         const int C) {
    const int c = get_global_id(0);
    const int j = get_global_id(1);
    const int row = get_global_id(2);
    const int Ho = H / 2, Wo = W / 2;
    if (row >= NB * Ho) return;
    // row = b * Ho + i, so the first input row is b * H + 2i = 2 * row.
    const int base = ((2 * row) * W + 2 * j) * C + c;
    const int down = W * C;
    y[(row * Wo + j) * C + c] = ((x[base] + x[base + C]) + (x[base + down] + x[base + down + C])) * 0.25f;
}

// dx: [N, H, W, C]; dy: [N, H/2, W/2, C]
__kernel void avgpool2x2_backward(__global const float* dy, __global float* dx, const int NB, const int H,
                                  const int W, const int C) {
    const int c = get_global_id(0);
    const int j = get_global_id(1);
    const int row = get_global_id(2);
    if (row >= NB * H) return;
    // row = b * H + i with H even, so the pooled row is row / 2 = b * H/2 + i/2.
    dx[(row * W + j) * C + c] = dy[((row >> 1) * (W >> 1) + (j >> 1)) * C + c] * 0.25f;
}

// x: [N, H, W, C] -> y: [N, 2H, 2W, C]
__kernel void upsample2x(__global const float* x, __global float* y, const int NB, const int H, const int W,
                         const int C) {
    const int c = get_global_id(0);
    const int j = get_global_id(1);
    const int row = get_global_id(2);
    if (row >= NB * 2 * H) return;
    // row = b * 2H + i, so the source row is row / 2 = b * H + i/2.
    y[(row * 2 * W + j) * C + c] = x[((row >> 1) * W + (j >> 1)) * C + c];
}

// dx: [N, H, W, C]; dy: [N, 2H, 2W, C]
__kernel void upsample2x_backward(__global const float* dy, __global float* dx, const int NB, const int H,
                                  const int W, const int C) {
    const int c = get_global_id(0);
    const int j = get_global_id(1);
    const int row = get_global_id(2);
    if (row >= NB * H) return;
    const int base = ((2 * row) * 2 * W + 2 * j) * C + c;
    const int down = 2 * W * C;
    dx[(row * W + j) * C + c] = (dy[base] + dy[base + C]) + (dy[base + down] + dy[base + down + C]);
}
