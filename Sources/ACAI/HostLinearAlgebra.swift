import ACAICPU

/// Float64 linear algebra on the host for the layers above the devices (evaluation), which may not import
/// BLAS or LAPACK themselves: LAPACK through `ACAICPU`.
public enum HostLinearAlgebra {
    /// Eigenvalues, largest first, and unit eigenvectors as rows (row-major n×n; row j belongs to value j, like
    /// NumPy's `vt`) of the symmetric row-major n×n `matrix` (LAPACK `dsyevd`).
    public static func symmetricEigen(_ matrix: [Double], dimension n: Int) throws -> (values: [Double], vectors: [Double]) {
        try CPULapack.symmetricEigen(matrix, dimension: n)
    }
}
