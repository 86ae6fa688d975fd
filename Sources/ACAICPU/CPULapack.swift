import ACAIDevice
import CLAPACK

/// Host float64 linear algebra through LAPACK, for the evaluation code above the device layer (which may not
/// import LAPACK itself): reached through `ACAI.HostLinearAlgebra`.
public enum CPULapack {
    /// Eigenvalues, largest first, and unit eigenvectors (row j belongs to value j; row-major n×n) of the
    /// symmetric row-major n×n `matrix`, by LAPACK's divide-and-conquer `dsyevd` (lower triangle read).
    public static func symmetricEigen(_ matrix: [Double], dimension n: Int) throws -> (values: [Double], vectors: [Double]) {
        guard n >= 0, matrix.count == n * n else {
            throw DeviceError.invalidArgument("eigendecomposition: \(matrix.count) values for a \(n)×\(n) matrix")
        }
        guard matrix.allSatisfy(\.isFinite) else {
            throw DeviceError.invalidArgument("eigendecomposition: the matrix has non-finite values")
        }
        guard n > 0 else { return ([], []) }
        guard n <= Int(Int32.max) else { throw DeviceError.invalidArgument("eigendecomposition: \(n)×\(n) is too large for LAPACK") }
        // A symmetric matrix is its own transpose, so the row-major input is also column-major; on return
        // column j (contiguous in column-major order) is the eigenvector of the j-th smallest value.
        var a = matrix
        var w = [Double](repeating: 0, count: n)
        let info = a.withUnsafeMutableBufferPointer { ap in
            w.withUnsafeMutableBufferPointer { wp in
                LAPACKE_dsyevd(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "V")), CChar(UInt8(ascii: "L")),
                               Int32(n), ap.baseAddress, Int32(n), wp.baseAddress)
            }
        }
        guard info == 0 else {
            throw DeviceError.invalidArgument("LAPACK dsyevd failed on a \(n)×\(n) matrix (info \(info): "
                + (info > 0 ? "the algorithm did not converge)" : "argument \(-info) was invalid)"))
        }
        var values = [Double](repeating: 0, count: n)
        var vectors = [Double](repeating: 0, count: n * n)
        for row in 0..<n {
            let j = n - 1 - row
            values[row] = w[j]
            for k in 0..<n { vectors[row * n + k] = a[j * n + k] }
        }
        return (values, vectors)
    }
}
