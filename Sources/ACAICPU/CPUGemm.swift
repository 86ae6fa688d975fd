import ACAIDevice
import CBLAS
import Foundation

enum CPUGemm {
    /// C = alpha·op(A)·op(B) + beta·C, row-major, through OpenBLAS.
    static func gemm(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
                     _ s: GemmShape) {
        if s.m == 0 || s.n == 0 { return }
        if s.k == 0 {
            // The product is empty: C = beta·C (BLAS would reject the zero leading dimensions).
            let count = s.m * s.n
            if s.beta == 0 {
                c.initialize(repeating: 0, count: count)
            } else {
                for i in 0..<count { c[i] *= s.beta }
            }
            return
        }
        sgemm(a, b, c, m: s.m, n: s.n, k: s.k, transA: s.transA, transB: s.transB, alpha: s.alpha, beta: s.beta)
    }

    /// Dense row-major sgemm with leading dimensions implied by the shape (all sizes > 0).
    static func sgemm(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
                      m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false, alpha: Float = 1,
                      beta: Float = 0, lda: Int? = nil, ldb: Int? = nil, ldc: Int? = nil) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda ?? (transA ? m : k)),
                    b, Int32(ldb ?? (transB ? k : n)),
                    beta, c, Int32(ldc ?? n))
    }
}

/// Raw OpenBLAS, the yardstick `acai bench ops` compares every device with.
public enum BLASReference {
    /// The OpenBLAS build configuration and its thread count.
    public static var description: String {
        let config = openblas_get_config().map { String(cString: $0) } ?? "OpenBLAS"
        return "\(config.trimmingCharacters(in: .whitespaces)), \(openblas_get_num_threads()) threads"
    }

    /// Median seconds of one `cblas_sgemm` (C = A·B, row-major, m×k times k×n) on random non-zero data,
    /// after one warm-up call.
    public static func sgemmSeconds(m: Int, n: Int, k: Int, repeats: Int) -> Double {
        precondition(m > 0 && n > 0 && k > 0, "sgemm sizes must be positive")
        let a = UnsafeMutablePointer<Float>.allocate(capacity: m * k)
        let b = UnsafeMutablePointer<Float>.allocate(capacity: k * n)
        let c = UnsafeMutablePointer<Float>.allocate(capacity: m * n)
        defer { a.deallocate(); b.deallocate(); c.deallocate() }
        // Values in [0.5, 1.5): non-zero, so no sparsity shortcut can apply, and nothing overflows.
        for i in 0..<(m * k) { a[i] = 0.5 + RandomBits.uniform(seed: 1, counter: UInt64(i)) }
        for i in 0..<(k * n) { b[i] = 0.5 + RandomBits.uniform(seed: 2, counter: UInt64(i)) }
        c.initialize(repeating: 0, count: m * n)
        CPUGemm.sgemm(a, b, c, m: m, n: n, k: k)
        var times: [Double] = []
        for _ in 0..<max(1, repeats) {
            let start = monotonicNanoseconds()
            CPUGemm.sgemm(a, b, c, m: m, n: n, k: k)
            times.append(Double(monotonicNanoseconds() - start) / 1e9)
        }
        times.sort()
        return times.count % 2 == 1 ? times[times.count / 2]
            : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
    }
}
