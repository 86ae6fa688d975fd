// Elementwise kernels: fill, unary functions, binary functions (dense fast path and broadcasting path).
// One kernel per function, named unary_<UnaryFunction.rawValue>, binary_<BinaryFunction.rawValue> and
// binary_<...>_bcast.
//
// The dense kernels give each work-item EW consecutive elements (-DEW=<1|2|4|8|16>, default 16) as one
// vector, with a scalar loop for the tail in the last work-item: CPU OpenCL compilers (PoCL) vectorise
// math built-ins (exp, log, ...) only when they are called on explicit vectors. Each function is written
// once as an expression valid for float and for floatEW; T names the type in the expression.
#ifndef EW
#define EW 16
#endif
#define ET VEC_TYPE(EW)

// Work-item i covers elements [i * EW, i * EW + EW) of n.
#define ELEMENTWISE_BODY(VECTOR_STATEMENT, SCALAR_STATEMENT)                                      \
    const int i0 = get_global_id(0) * EW;                                                         \
    if (i0 >= n) return;                                                                          \
    if (i0 + EW <= n) {                                                                           \
        const int i = i0;                                                                         \
        VECTOR_STATEMENT;                                                                         \
    } else {                                                                                      \
        for (int i = i0; i < n; ++i) { SCALAR_STATEMENT; }                                        \
    }

__kernel void fill(__global float* out, const int n, const float value) {
    ELEMENTWISE_BODY(VEC_STORE(EW, (ET)(value), out + i), out[i] = value)
}

#define UNARY(NAME, EXPR)                                                                         \
    float unary1_##NAME(const float v, const float alpha, const float beta) {                     \
        typedef float T;                                                                          \
        return (EXPR);                                                                            \
    }                                                                                             \
    ET unaryv_##NAME(const ET v, const float alpha, const float beta) {                           \
        typedef ET T;                                                                             \
        return (EXPR);                                                                            \
    }                                                                                             \
    __kernel void unary_##NAME(__global const float* x, __global float* out, const int n,         \
                               const float alpha, const float beta) {                             \
        ELEMENTWISE_BODY(VEC_STORE(EW, unaryv_##NAME(VEC_LOAD(EW, x + i), alpha, beta), out + i), \
                         out[i] = unary1_##NAME(x[i], alpha, beta))                               \
    }

UNARY(affine, alpha * v + beta)
UNARY(reciprocal, alpha / v)
UNARY(exp, exp(v))
UNARY(log, log(v))
UNARY(sqrt, sqrt(v))
UNARY(square, v * v)
UNARY(abs, fabs(v))
UNARY(sign, select(select((T)(0.0f), (T)(-1.0f), v < (T)(0.0f)), (T)(1.0f), v > (T)(0.0f)))
UNARY(leakyRelu, select(alpha * v, v, v > (T)(0.0f)))
UNARY(sigmoid, (T)(1.0f) / ((T)(1.0f) + exp(-v)))

// The broadcasting kernel walks the output as [d0, d1, d2, d3] x d4 x d5 with the host's collapsed layout
// (padded on the left with size-1 dimensions): launch dimension 0 is the innermost axis (d5), 1 is d4
// and 2 the other four flattened, so only that last index needs divisions. Strides are element strides
// of a and b (0 = broadcast). Dimensions 0 and 1 are launched exactly (see common.h).
#define BINARY(NAME, EXPR)                                                                        \
    float binary1_##NAME(const float a, const float b, const float alpha) {                       \
        typedef float T;                                                                          \
        return (EXPR);                                                                            \
    }                                                                                             \
    ET binaryv_##NAME(const ET a, const ET b, const float alpha) {                                \
        typedef ET T;                                                                             \
        return (EXPR);                                                                            \
    }                                                                                             \
    __kernel void binary_##NAME(__global const float* A, __global const float* B,                \
                                __global float* out, const int n, const float alpha) {           \
        ELEMENTWISE_BODY(                                                                         \
            VEC_STORE(EW, binaryv_##NAME(VEC_LOAD(EW, A + i), VEC_LOAD(EW, B + i), alpha), out + i), \
            out[i] = binary1_##NAME(A[i], B[i], alpha))                                           \
    }                                                                                             \
    __kernel void binary_##NAME##_bcast(                                                          \
        __global const float* A, __global const float* B, __global float* out, const float alpha, \
        const int d0, const int d1, const int d2, const int d3, const int d4, const int d5,       \
        const int a0, const int a1, const int a2, const int a3, const int a4, const int a5,       \
        const int b0, const int b1, const int b2, const int b3, const int b4, const int b5) {     \
        const int i5 = get_global_id(0);                                                          \
        const int i4 = get_global_id(1);                                                          \
        const int outer = get_global_id(2);                                                       \
        if (outer >= d0 * d1 * d2 * d3) return;                                                   \
        int t = outer;                                                                            \
        const int i3 = t % d3;                                                                    \
        t /= d3;                                                                                  \
        const int i2 = t % d2;                                                                    \
        t /= d2;                                                                                  \
        const int i1 = t % d1;                                                                    \
        const int i0 = t / d1;                                                                    \
        const int ia = i0 * a0 + i1 * a1 + i2 * a2 + i3 * a3 + i4 * a4 + i5 * a5;                 \
        const int ib = i0 * b0 + i1 * b1 + i2 * b2 + i3 * b3 + i4 * b4 + i5 * b5;                 \
        out[(outer * d4 + i4) * d5 + i5] = binary1_##NAME(A[ia], B[ib], alpha);                   \
    }

BINARY(add, a + b)
BINARY(sub, a - b)
BINARY(mul, a * b)
BINARY(div, a / b)
BINARY(leakyReluBackward, select(alpha * b, b, a > (T)(0.0f)))
BINARY(sigmoidCrossEntropy, fmax(a, (T)(0.0f)) - a * b + log1p(exp(-fabs(a))))
BINARY(maximum, fmax(a, b))
BINARY(greater, select((T)(0.0f), (T)(1.0f), a > b))
