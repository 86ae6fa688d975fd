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
