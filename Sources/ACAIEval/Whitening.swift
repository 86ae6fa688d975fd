import ACAI
import Foundation

/// Eigendecomposition of a real symmetric matrix in float64 on the host, by LAPACK's divide-and-conquer
/// `dsyevd` (through `HostLinearAlgebra`, since only the CPU device layer links LAPACK). The hand-written
/// Householder + QL version it replaced lives on in the tests as the reference (`ReferenceSymmetricEigendecomposition`).
public struct SymmetricEigendecomposition: Sendable {
    public let dimension: Int
    /// Eigenvalues, largest first.
    public let values: [Double]
    /// Unit eigenvectors, row-major `dimension`×`dimension`: row j is the eigenvector of `values[j]` (so this is
    /// Vᵀ for A = V·diag(values)·Vᵀ, like NumPy's `vt`).
    public let vectors: [Double]

    /// Decomposes the symmetric row-major `dimension`×`dimension` matrix `matrix` (the lower triangle is what
    /// LAPACK reads). Throws for a wrong size, non-finite values, or a LAPACK failure.
    public init(symmetric matrix: [Double], dimension n: Int) throws {
        let result = try HostLinearAlgebra.symmetricEigen(matrix, dimension: n)
        dimension = n
        values = result.values
        vectors = result.vectors
    }
}

/// The reference's SVD whitening (`cluster.py`, `use_svd=1`): subtract the training mean, project onto the right
/// singular vectors V of the centred training data Xc = U·S·Vᵀ, divide by the singular values plus 1e-5:
///
///     apply(x) = ((x − mean)·V) / (s + 1e-5)
///
/// Scale: the whitened training rows are U·S/(S + 1e-5) ≈ U, so their sum of outer products XᵀX is ≈ I (the
/// per-dimension sample variance is ≈ 1/n, not 1): the reference divides by the singular values, not by √n·std.
///
/// V and s come from the d×d Gram matrix XcᵀXc = V·S²·Vᵀ, computed on the device in chunks of rows (so each
/// float32 product sums few terms) and accumulated in float64 on the host, then decomposed in float64 by LAPACK
/// (`SymmetricEigendecomposition`); s = √max(λ, 0). With fewer points than dimensions (n < d) the n×n Gram
/// XcXcᵀ = U·S²·Uᵀ is decomposed instead and Vᵀ = S⁻¹UᵀXc (O(n²d) rather than O(d³)). Squaring the condition
/// number costs precision in the smallest singular values: directions with s below ~1e-3·s_max are determined
/// less accurately than by a float32 SVD of Xc. Like NumPy's `svd(full_matrices=False)`, min(n, d) directions are kept, largest first;
/// each vector's sign is arbitrary (as with any SVD).
public struct Whitening: Sendable {
    /// Added to each singular value before dividing (the reference's 1e-5).
    public static let epsilon: Double = 1e-5

    /// Training mean, [d].
    public let mean: [Float]
    /// Right singular vectors as rows, [r, d] row-major (NumPy's `vt`), r = min(n, d).
    public let components: [Float]
    /// Singular values of the centred training data, [r], largest first.
    public let singularValues: [Double]

    public var inputDimension: Int { mean.count }
    public var outputDimension: Int { singularValues.count }

    /// Fits on training features `x` ([n, ...], flattened to [n, d]) on its device. `chunkRows` rows go into
    /// each device product of the Gram matrix.
    public init(fitting x: Tensor, chunkRows: Int = 1024) throws {
        let flat = try x.detached().flattened()
        let n = flat.shape[0], d = flat.shape[1]
        guard n >= 1, d >= 1 else { throw DeviceError.invalidArgument("whitening needs at least one row and column, got \(x.shape)") }
        let chunk = max(1, chunkRows)
        let device = flat.device
        let chunks = stride(from: 0, to: n, by: chunk).map { $0..<min($0 + chunk, n) }
        func rows(_ r: Range<Int>) throws -> Tensor { r.count == n ? flat : try flat.slice(r) }

        var sums = [Double](repeating: 0, count: d)
        for r in chunks {
            let s = try rows(r).sum(axes: [0]).toArray()
            for j in 0..<d { sums[j] += Double(s[j]) }
        }
        let meanF = sums.map { Float($0 / Double(n)) }
        let meanT = try Tensor(shape: [1, d], values: meanF, on: device)
        mean = meanF
        if n < d {
            // Fewer points than dimensions: decompose the n×n Gram Xc·Xcᵀ = U·S²·Uᵀ instead of the d×d one, and
            // get the right singular vectors as Vᵀ = S⁻¹·Uᵀ·Xc (on the device), each row normalised in float64.
            // The centred data has rank at most n − 1, so at least one direction is null: a row that comes out
            // zero stays zero (its whitened coordinate is 0; an SVD would give an arbitrary null direction).
            let c = try flat - meanT
            var gram = try c.matmul(c, transposeB: true).toArray().map(Double.init)
            try Self.symmetrize(&gram, n)
            let eigen = try SymmetricEigendecomposition(symmetric: gram, dimension: n)
            let s = eigen.values.map { Swift.max($0, 0).squareRoot() }
            var scaled = [Float](repeating: 0, count: n * n)
            for j in 0..<n where s[j] > 0 {
                for k in 0..<n { scaled[j * n + k] = Float(eigen.vectors[j * n + k] / s[j]) }
            }
            var vt = try Tensor(shape: [n, n], values: scaled, on: device).matmul(c).toArray().map(Double.init)
            for j in 0..<n {
                let norm = (0..<d).reduce(0.0) { $0 + vt[j * d + $1] * vt[j * d + $1] }.squareRoot()
                for k in 0..<d { vt[j * d + k] = norm > 0 ? vt[j * d + k] / norm : 0 }
            }
            singularValues = s
            components = vt.map(Float.init)
            return
        }
        var gram = [Double](repeating: 0, count: d * d)
        for r in chunks {
            let c = try rows(r) - meanT
            let g = try c.matmul(c, transposeA: true).toArray()
            for i in 0..<(d * d) { gram[i] += Double(g[i]) }
        }
        try Self.symmetrize(&gram, d)
        let eigen = try SymmetricEigendecomposition(symmetric: gram, dimension: d)
        singularValues = eigen.values.prefix(d).map { Swift.max($0, 0).squareRoot() }
        components = eigen.vectors.map(Float.init)
    }

    /// Checks a Gram matrix is finite and makes it exactly symmetric (a device's float32 product need not be
    /// bitwise symmetric).
    static func symmetrize(_ gram: inout [Double], _ m: Int) throws {
        guard gram.allSatisfy(\.isFinite) else {
            throw DeviceError.invalidArgument("whitening: the training features contain non-finite values")
        }
        for i in 0..<m {
            for j in (i + 1)..<m {
                let v = 0.5 * (gram[i * m + j] + gram[j * m + i])
                gram[i * m + j] = v
                gram[j * m + i] = v
            }
        }
    }

    /// Fits on host features: `values` row-major [rows, columns], computed on `device`.
    public init(fitting values: [Float], rows: Int, columns: Int, on device: any Device, chunkRows: Int = 1024) throws {
        try self.init(fitting: Tensor(shape: [rows, columns], values: values, on: device), chunkRows: chunkRows)
    }

    /// ((x − mean)·V) / (s + 1e-5) on x's device: [n, ...] flattened to [n, d] → [n, r].
    public func apply(_ x: Tensor) throws -> Tensor {
        let flat = try x.detached().flattened()
        let d = inputDimension, r = outputDimension
        guard flat.shape[1] == d else {
            throw DeviceError.invalidArgument("whitening fitted on \(d) features, got \(x.shape)")
        }
        let device = flat.device
        let meanT = try Tensor(shape: [1, d], values: mean, on: device)
        let vt = try Tensor(shape: [r, d], values: components, on: device)
        let scale = try Tensor(shape: [1, r], values: singularValues.map { Float(1 / ($0 + Self.epsilon)) }, on: device)
        return try (flat - meanT).matmul(vt, transposeB: true) * scale
    }
}
