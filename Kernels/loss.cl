// Softmax cross-entropy over rows of [rows, classes], numerically stable (the row max is subtracted).

// loss[r] = -sum_c labels[r, c] * log_softmax(logits[r, :])_c
__kernel void softmax_xent(__global const float* logits, __global const float* labels, __global float* loss,
                           const int rows, const int classes) {
    const int r = get_global_id(0);
    if (r >= rows) return;
    const __global float* l = logits + r * classes;
    const __global float* y = labels + r * classes;
    float m = l[0];
    for (int c = 1; c < classes; ++c) m = fmax(m, l[c]);
    float s = 0.0f;
    for (int c = 0; c < classes; ++c) s += exp(l[c] - m);
    const float lse = log(s);
    float acc = 0.0f;
    for (int c = 0; c < classes; ++c) acc += y[c] * (l[c] - m - lse);
    loss[r] = -acc;
}

// dlogits[r, c] = dloss[r] * (softmax(logits[r, :])_c - labels[r, c])
__kernel void softmax_xent_backward(__global const float* logits, __global const float* labels,
                                    __global const float* dloss, __global float* dlogits, const int rows,
                                    const int classes) {
    const int r = get_global_id(0);
    if (r >= rows) return;
    const __global float* l = logits + r * classes;
    const __global float* y = labels + r * classes;
    __global float* d = dlogits + r * classes;
    float m = l[0];
    for (int c = 1; c < classes; ++c) m = fmax(m, l[c]);
    float s = 0.0f;
    for (int c = 0; c < classes; ++c) s += exp(l[c] - m);
    const float inv = 1.0f / s;
    const float g = dloss[r];
    for (int c = 0; c < classes; ++c) d[c] = g * (exp(l[c] - m) * inv - y[c]);
}

// Squared error of row means over rows start..start+count of a [rows, columns] buffer, in one work-group
// of SEM_GROUP work-items (a power of two, set by the host): loss[0] = mean_i (mean_c a[start+i, c] - t[i])^2.
#ifndef SEM_GROUP
#define SEM_GROUP 256  // the other kernels of this file are built without the option
#endif
__kernel void squared_error_mean(__global const float* a, __global const float* target, __global float* loss,
                                 const int columns, const int start, const int count, const int hasTarget) {
    __local float partial[SEM_GROUP];
    const int lid = get_local_id(0);
    float acc = 0.0f;
    for (int i = lid; i < count; i += SEM_GROUP) {
        const __global float* row = a + (start + i) * columns;
        float m = 0.0f;
        for (int c = 0; c < columns; ++c) m += row[c];
        m /= (float)columns;
        const float d = m - (hasTarget ? target[i] : 0.0f);
        acc += d * d;
    }
    partial[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int step = SEM_GROUP / 2; step > 0; step /= 2) {
        if (lid < step) partial[lid] += partial[lid + step];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) loss[0] = partial[0] / (float)count;
}

// da[r, :] = dloss[0] * 2 (mean_c a[r, :] - t[r - start]) / (count * columns) for the rows in the range;
// 0 elsewhere, or added to da (other rows untouched) when accumulate. One work-item per row.
__kernel void squared_error_mean_backward(__global const float* a, __global const float* target,
                                          __global const float* dloss, __global float* da, const int rows,
                                          const int columns, const int start, const int count,
                                          const int hasTarget, const int accumulate) {
    const int r = get_global_id(0);
    if (r >= rows) return;
    __global float* d = da + r * columns;
    if (r < start || r >= start + count) {
        if (!accumulate) for (int c = 0; c < columns; ++c) d[c] = 0.0f;
        return;
    }
    const __global float* row = a + r * columns;
    float m = 0.0f;
    for (int c = 0; c < columns; ++c) m += row[c];
    m /= (float)columns;
    const float g = dloss[0] * 2.0f * (m - (hasTarget ? target[r - start] : 0.0f)) / ((float)count * (float)columns);
    for (int c = 0; c < columns; ++c) d[c] = accumulate ? d[c] + g : g;
}

// out[first + i] += s_i[0] for i < count (at most 8 per launch): a step's losses added to their sums.
__kernel void accumulate_scalars(__global float* out, const int first, const int count, __global const float* s0,
                                 __global const float* s1, __global const float* s2, __global const float* s3,
                                 __global const float* s4, __global const float* s5, __global const float* s6,
                                 __global const float* s7) {
    if (get_global_id(0) != 0) return;
    __global const float* sources[8] = {s0, s1, s2, s3, s4, s5, s6, s7};
    for (int i = 0; i < count; ++i) out[first + i] += sources[i][0];
}
