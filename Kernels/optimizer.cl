// One fused TF1 Adam step, in place:
// m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2; p -= lrT * m / (sqrt(v) + eps)
// Work-item i updates elements [i * EW, i * EW + EW) as one vector (see elementwise.cl).
#ifndef EW
#define EW 16
#endif
#define ET VEC_TYPE(EW)

__kernel void adam(__global float* param, __global const float* grad, __global float* m, __global float* v,
                   const int n, const float lrT, const float beta1, const float beta2, const float epsilon) {
    const int i0 = get_global_id(0) * EW;
    if (i0 >= n) return;
    if (i0 + EW <= n) {
        const ET g = VEC_LOAD(EW, grad + i0);
        const ET mi = beta1 * VEC_LOAD(EW, m + i0) + (1.0f - beta1) * g;
        const ET vi = beta2 * VEC_LOAD(EW, v + i0) + (1.0f - beta2) * (g * g);
        VEC_STORE(EW, mi, m + i0);
        VEC_STORE(EW, vi, v + i0);
        VEC_STORE(EW, VEC_LOAD(EW, param + i0) - lrT * mi / (sqrt(vi) + epsilon), param + i0);
    } else {
        for (int i = i0; i < n; ++i) {
            const float g = grad[i];
            const float mi = beta1 * m[i] + (1.0f - beta1) * g;
            const float vi = beta2 * v[i] + (1.0f - beta2) * (g * g);
            m[i] = mi;
            v[i] = vi;
            param[i] -= lrT * mi / (sqrt(vi) + epsilon);
        }
    }
}
