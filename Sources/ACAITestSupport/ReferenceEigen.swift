import Foundation

/// The float64 reference for `SymmetricEigendecomposition` (which calls LAPACK): Householder reduction to
/// tridiagonal form followed by the implicit QL method with shifts (the EISPACK `tred2`/`tql2` pair, as in
/// JAMA), written out by hand. This was the library's own implementation before LAPACK's `dsyevd`; the tests
/// compare the two.
public struct ReferenceSymmetricEigendecomposition: Sendable {
    public let dimension: Int
    /// Eigenvalues, largest first.
    public let values: [Double]
    /// Unit eigenvectors, row-major `dimension`×`dimension`: row j is the eigenvector of `values[j]` (so this is
    /// Vᵀ for A = V·diag(values)·Vᵀ, like NumPy's `vt`).
    public let vectors: [Double]

    /// Decomposes the symmetric row-major `dimension`×`dimension` matrix `matrix` (only symmetric input is
    /// meaningful; the lower triangle is what the reduction reads). Values must be finite.
    public init(symmetric matrix: [Double], dimension n: Int) {
        precondition(n >= 0 && matrix.count == n * n, "eigendecomposition: \(matrix.count) values for a \(n)×\(n) matrix")
        precondition(matrix.allSatisfy(\.isFinite), "eigendecomposition: the matrix has non-finite values")
        dimension = n
        guard n > 0 else {
            values = []
            vectors = []
            return
        }
        // Column-major working copy w[c·n + r] = V[r][c]: every inner loop of tred2/tql2 walks down a column of
        // V, so it walks contiguous memory here. A is symmetric, so its row-major storage is also column-major.
        var w = matrix
        var d = [Double](repeating: 0, count: n)
        var e = [Double](repeating: 0, count: n)
        w.withUnsafeMutableBufferPointer { wp in
            d.withUnsafeMutableBufferPointer { dp in
                e.withUnsafeMutableBufferPointer { ep in
                    Self.tridiagonalize(wp, dp, ep, n)
                    Self.diagonalize(wp, dp, ep, n)
                }
            }
        }
        // tql2 leaves the eigenvalues unsorted; eigenvector j is column j of V = contiguous w[j·n..<(j+1)·n].
        let order = (0..<n).sorted { d[$0] > d[$1] || (d[$0] == d[$1] && $0 < $1) }
        values = order.map { d[$0] }
        var out = [Double](repeating: 0, count: n * n)
        for (row, j) in order.enumerated() {
            for k in 0..<n { out[row * n + k] = w[j * n + k] }
        }
        vectors = out
    }

    /// Householder reduction to tridiagonal form (EISPACK tred2): on return `d` holds the diagonal, `e[1...]` the
    /// subdiagonal, and `w` the accumulated orthogonal transformation. `w` is column-major (w[c·n + r] = V[r][c]).
    private static func tridiagonalize(_ w: UnsafeMutableBufferPointer<Double>, _ d: UnsafeMutableBufferPointer<Double>,
                                       _ e: UnsafeMutableBufferPointer<Double>, _ n: Int) {
        for j in 0..<n { d[j] = w[j * n + n - 1] }
        var i = n - 1
        while i > 0 {
            var scale = 0.0, h = 0.0
            for k in 0..<i { scale += Swift.abs(d[k]) }
            if scale == 0 {
                e[i] = d[i - 1]
                for j in 0..<i {
                    d[j] = w[j * n + i - 1]
                    w[j * n + i] = 0
                    w[i * n + j] = 0
                }
            } else {
                // Householder vector.
                for k in 0..<i {
                    d[k] /= scale
                    h += d[k] * d[k]
                }
                var f = d[i - 1]
                var g = h.squareRoot()
                if f > 0 { g = -g }
                e[i] = scale * g
                h -= f * g
                d[i - 1] = f - g
                for j in 0..<i { e[j] = 0 }
                // Similarity transformation of the remaining columns.
                for j in 0..<i {
                    f = d[j]
                    w[i * n + j] = f
                    let col = j * n
                    g = e[j] + w[col + j] * f
                    var k = j + 1
                    while k < i {
                        g += w[col + k] * d[k]
                        e[k] += w[col + k] * f
                        k += 1
                    }
                    e[j] = g
                }
                f = 0
                for j in 0..<i {
                    e[j] /= h
                    f += e[j] * d[j]
                }
                let hh = f / (h + h)
                for j in 0..<i { e[j] -= hh * d[j] }
                for j in 0..<i {
                    f = d[j]
                    g = e[j]
                    let col = j * n
                    for k in j..<i { w[col + k] -= f * e[k] + g * d[k] }
                    d[j] = w[col + i - 1]
                    w[col + i] = 0
                }
            }
            d[i] = h
            i -= 1
        }
        // Accumulate the transformations.
        for i in 0..<(n - 1) {
            w[i * n + n - 1] = w[i * n + i]
            w[i * n + i] = 1
            let h = d[i + 1]
            let next = (i + 1) * n
            if h != 0 {
                for k in 0...i { d[k] = w[next + k] / h }
                for j in 0...i {
                    let col = j * n
                    var g = 0.0
                    for k in 0...i { g += w[next + k] * w[col + k] }
                    for k in 0...i { w[col + k] -= g * d[k] }
                }
            }
            for k in 0...i { w[next + k] = 0 }
        }
        for j in 0..<n {
            d[j] = w[j * n + n - 1]
            w[j * n + n - 1] = 0
        }
        w[(n - 1) * n + n - 1] = 1
        e[0] = 0
    }

    /// Implicit QL iterations on the tridiagonal matrix (EISPACK tql2), rotating the columns of `w` along.
    private static func diagonalize(_ w: UnsafeMutableBufferPointer<Double>, _ d: UnsafeMutableBufferPointer<Double>,
                                    _ e: UnsafeMutableBufferPointer<Double>, _ n: Int) {
        for i in 1..<max(n, 1) { e[i - 1] = e[i] }
        e[n - 1] = 0
        var f = 0.0, tst1 = 0.0
        let eps = Double.ulpOfOne
        for l in 0..<n {
            // Find a negligible subdiagonal element (e[n−1] = 0 stops the search).
            tst1 = Swift.max(tst1, Swift.abs(d[l]) + Swift.abs(e[l]))
            var m = l
            while m < n - 1, Swift.abs(e[m]) > eps * tst1 { m += 1 }
            if m > l {
                var sweeps = 0
                repeat {
                    sweeps += 1
                    // Implicit shift.
                    var g = d[l]
                    var p = (d[l + 1] - g) / (2 * e[l])
                    var r = hypot(p, 1)
                    if p < 0 { r = -r }
                    d[l] = e[l] / (p + r)
                    d[l + 1] = e[l] * (p + r)
                    let dl1 = d[l + 1]
                    var h = g - d[l]
                    var i = l + 2
                    while i < n {
                        d[i] -= h
                        i += 1
                    }
                    f += h
                    // Implicit QL transformation.
                    p = d[m]
                    var c = 1.0, c2 = 1.0, c3 = 1.0
                    let el1 = e[l + 1]
                    var s = 0.0, s2 = 0.0
                    i = m - 1
                    while i >= l {
                        c3 = c2
                        c2 = c
                        s2 = s
                        g = c * e[i]
                        h = c * p
                        r = hypot(p, e[i])
                        e[i + 1] = s * r
                        s = e[i] / r
                        c = p / r
                        p = c * d[i] - s * g
                        d[i + 1] = h + s * (c * g + s * d[i])
                        // Rotate columns i and i+1 of V.
                        let a = i * n, b = (i + 1) * n
                        for k in 0..<n {
                            let vb = w[b + k], va = w[a + k]
                            w[b + k] = s * va + c * vb
                            w[a + k] = c * va - s * vb
                        }
                        i -= 1
                    }
                    p = -s * s2 * c3 * el1 * e[l] / dl1
                    e[l] = s * p
                    d[l] = c * p
                } while Swift.abs(e[l]) > eps * tst1 && sweeps < 100
            }
            d[l] += f
            e[l] = 0
        }
    }
}

