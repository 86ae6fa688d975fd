import ACAI
import ACAIEval
import ACAITestSupport
import Foundation
import XCTest

/// The clustering evaluation (reference `cluster.py`): the Hungarian method against hand-checked cases and brute
/// force, clustering accuracy, the symmetric eigendecomposition in float64, SVD whitening, k-means and the whole
/// protocol on synthetic labelled blobs. Device parts run on the CPU and OpenCL devices. Random inputs come from
/// a fresh logged seed (replay with ACAI_TEST_SEED).
final class ClusteringTests: XCTestCase {
    // MARK: helpers

    /// A standard normal draw (Box–Muller).
    static func normal(_ rng: inout SeededGenerator) -> Double {
        let u1 = Double.random(in: Double.ulpOfOne..<1, using: &rng), u2 = Double.random(in: 0..<1, using: &rng)
        return (-2 * Foundation.log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    static func totalWeight(_ weights: [[Double]], _ assignment: [Int]) -> Double {
        zip(weights, assignment).reduce(0) { $0 + ($1.1 >= 0 ? $1.0[$1.1] : 0) }
    }

    static func isPermutation(_ a: [Int], of n: Int) -> Bool { a.count == n && Set(a) == Set(0..<n) }

    static func permutations(_ n: Int) -> [[Int]] {
        guard n > 0 else { return [[]] }
        return permutations(n - 1).flatMap { p in (0...p.count).map { i -> [Int] in var q = p; q.insert(n - 1, at: i); return q } }
    }

    /// `perClass` points around each of `centres.count` centres with per-coordinate noise `sigma`; labels in order.
    static func blobs(centres: [[Double]], perClass: Int, sigma: Double, rng: inout SeededGenerator) -> (points: [Float], labels: [Int]) {
        var points: [Float] = [], labels: [Int] = []
        for i in 0..<perClass * centres.count {
            let label = i % centres.count  // interleaved, so rows of a class are not contiguous
            labels.append(label)
            for c in centres[label] { points.append(Float(c + sigma * normal(&rng))) }
        }
        return (points, labels)
    }

    /// `count` centres in [−10, 10]^d at pairwise distance ≥ `separation`.
    static func centres(_ count: Int, dimensions d: Int, separation: Double, rng: inout SeededGenerator) -> [[Double]] {
        var out: [[Double]] = []
        while out.count < count {
            let c = (0..<d).map { _ in Double.random(in: -10...10, using: &rng) }
            if out.allSatisfy({ zip($0, c).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot() >= separation }) {
                out.append(c)
            }
        }
        return out
    }

    // MARK: Hungarian

    func testHungarianHandCheckedCases() {
        // Greedy takes 10 first and ends with 10 + 1 + 1 = 12; the optimum is 9 + 9 + 1 = 19.
        let greedyFails: [[Double]] = [[10, 9, 1], [9, 1, 1], [1, 1, 1]]
        XCTAssertEqual(Hungarian.maximumMatching(greedyFails), [1, 0, 2])

        // The classic 4×4 minimum-cost example: optimum 69 + 37 + 11 + 23 = 140.
        let cost: [[Double]] = [[82, 83, 69, 92], [77, 37, 49, 92], [11, 69, 5, 86], [8, 9, 98, 23]]
        let textbook = Hungarian.maximumMatching(cost.map { $0.map { -$0 } })
        XCTAssertEqual(textbook, [2, 1, 0, 3])
        XCTAssertEqual(-Self.totalWeight(cost.map { $0.map { -$0 } }, textbook), 140)

        // Ties: two optimal permutations of weight 6; any of them, as a permutation.
        let ties: [[Double]] = [[1, 2, 2], [2, 1, 2], [2, 2, 1]]
        let tied = Hungarian.maximumMatching(ties)
        XCTAssertTrue(Self.isPermutation(tied, of: 3), "\(tied)")
        XCTAssertEqual(Self.totalWeight(ties, tied), 6)
        let flat = Hungarian.maximumMatching([[Double]](repeating: [3, 3, 3, 3], count: 4))
        XCTAssertTrue(Self.isPermutation(flat, of: 4), "\(flat)")

        // Rectangular: padded; extra rows get −1.
        XCTAssertEqual(Hungarian.maximumMatching([[1, 5, 3], [4, 2, 6]]), [1, 2])
        XCTAssertEqual(Hungarian.maximumMatching([[1, 4], [5, 2], [3, 6]]), [-1, 0, 1])
        XCTAssertEqual(Hungarian.maximumMatching([[7]]), [0])
        XCTAssertEqual(Hungarian.maximumMatching([]), [])
        // Negative weights.
        XCTAssertEqual(Hungarian.maximumMatching([[-1, -5], [-2, -10]]), [1, 0])
    }

    func testHungarianRecoversPermutationsAndMatchesBruteForce() {
        var rng = TestRandom.generator(self)
        for n in [1, 2, 5, 9, 17] {
            let perm = (0..<n).shuffled(using: &rng)
            let weights = (0..<n).map { i in (0..<n).map { j in perm[i] == j ? 1.0 : 0.0 } }
            XCTAssertEqual(Hungarian.maximumMatching(weights), perm, "permutation matrix \(n)×\(n)")
        }
        let all = Self.permutations(6)
        XCTAssertEqual(all.count, 720)
        for trial in 0..<40 {
            // Half continuous, half small integers (many ties).
            let weights = (0..<6).map { _ in
                (0..<6).map { _ in trial % 2 == 0 ? Double.random(in: -5...5, using: &rng) : Double(Int.random(in: 0...3, using: &rng)) }
            }
            let best = all.map { Self.totalWeight(weights, $0) }.max()!
            let found = Hungarian.maximumMatching(weights)
            XCTAssertTrue(Self.isPermutation(found, of: 6), "trial \(trial): \(found)")
            XCTAssertEqual(Self.totalWeight(weights, found), best, accuracy: 1e-9, "trial \(trial): \(weights)")
        }
        // Rectangular 4×6 against brute force over injections (first 4 entries of each permutation).
        for trial in 0..<10 {
            let weights = (0..<4).map { _ in (0..<6).map { _ in Double.random(in: 0...10, using: &rng) } }
            let best = all.map { Self.totalWeight(weights, Array($0.prefix(4))) }.max()!
            let found = Hungarian.maximumMatching(weights)
            XCTAssertEqual(Set(found).count, 4, "trial \(trial): columns must be distinct")
            XCTAssertEqual(Self.totalWeight(weights, found), best, accuracy: 1e-9, "rectangular trial \(trial)")
        }
    }

    func testClusteringAccuracy() {
        var rng = TestRandom.generator(self)
        let labels = (0..<200).map { _ in Int.random(in: 0..<5, using: &rng) }
        let relabel = (0..<5).shuffled(using: &rng)
        XCTAssertEqual(clusteringAccuracy(assignments: labels.map { relabel[$0] }, labels: labels, clusters: 5, classes: 5), 100)

        // Contingency (cluster × label): c0 {0: 2, 1: 1}, c1 {0: 1, 1: 2}, c2 {0: 1, 2: 3}: best 2 + 2 + 3 = 7 of 10.
        // Clusters are named so that the best mapping is not the identity: 0 → 1, 1 → 0, 2 → 2.
        let a = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2], l = [1, 1, 0, 0, 0, 1, 2, 2, 2, 0]
        XCTAssertEqual(clusteringAccuracy(assignments: a, labels: l, clusters: 3, classes: 3), 70, accuracy: 1e-12)
        // More clusters than classes: c0 {0: 3}, c1 {1: 2}, c2 {1: 1}: one of c1, c2 stays unmatched → 5 of 6.
        XCTAssertEqual(clusteringAccuracy(assignments: [0, 0, 0, 1, 1, 2], labels: [0, 0, 0, 1, 1, 1], clusters: 3, classes: 2),
                       500.0 / 6, accuracy: 1e-12)
        // Fewer clusters than classes: everything in one cluster → the largest class.
        XCTAssertEqual(clusteringAccuracy(assignments: [0, 0, 0, 0], labels: [2, 2, 1, 0], clusters: 1, classes: 3), 50)
    }

    // MARK: eigendecomposition and whitening

    /// A random orthogonal matrix (Gram–Schmidt on Gaussian columns), row-major.
    static func orthogonal(_ n: Int, rng: inout SeededGenerator) -> [Double] {
        var q = [[Double]]()
        while q.count < n {
            var v = (0..<n).map { _ in normal(&rng) }
            for _ in 0..<2 {
                for u in q {
                    let dot = zip(u, v).reduce(0) { $0 + $1.0 * $1.1 }
                    v = zip(v, u).map { $0 - dot * $1 }
                }
            }
            let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            if norm > 1e-6 { q.append(v.map { $0 / norm }) }
        }
        var out = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { out[i * n + j] = q[j][i] } }  // columns are the q's
        return out
    }

    /// max |A·v_j − λ_j·v_j| over all entries, and max |VᵀV − I|.
    static func eigenResiduals(_ a: [Double], _ e: SymmetricEigendecomposition) -> (residual: Double, orthogonality: Double) {
        eigenResiduals(a, n: e.dimension, values: e.values, vectors: e.vectors)
    }

    static func eigenResiduals(_ a: [Double], n: Int, values: [Double], vectors: [Double]) -> (residual: Double, orthogonality: Double) {
        struct E { var values: [Double]; var vectors: [Double] }
        let e = E(values: values, vectors: vectors)
        var residual = 0.0, orthogonality = 0.0
        for j in 0..<n {
            let v = Array(e.vectors[(j * n)..<((j + 1) * n)])
            for i in 0..<n {
                var av = 0.0
                for k in 0..<n { av += a[i * n + k] * v[k] }
                residual = max(residual, abs(av - e.values[j] * v[i]))
            }
            for other in j..<n {
                var dot = 0.0
                for k in 0..<n { dot += v[k] * e.vectors[other * n + k] }
                orthogonality = max(orthogonality, abs(dot - (other == j ? 1 : 0)))
            }
        }
        return (residual, orthogonality)
    }

    func testEigendecompositionRecoversKnownSpectrum() throws {
        var rng = TestRandom.generator(self)
        for n in [1, 2, 3, 13, 40] {
            // Known spectrum with a repeated value, a zero and negatives.
            var lambda = (0..<n).map { _ in Double.random(in: -50...100, using: &rng) }
            if n >= 3 { lambda[1] = lambda[0]; lambda[2] = 0 }
            let q = Self.orthogonal(n, rng: &rng)
            var a = [Double](repeating: 0, count: n * n)
            for i in 0..<n { for j in 0..<n { for k in 0..<n { a[i * n + j] += q[i * n + k] * lambda[k] * q[j * n + k] } } }
            for i in 0..<n { for j in 0..<i { a[j * n + i] = a[i * n + j] } }  // exactly symmetric
            let e = try SymmetricEigendecomposition(symmetric: a, dimension: n)
            let reference = ReferenceSymmetricEigendecomposition(symmetric: a, dimension: n)
            let scale = max(1, lambda.map(abs).max()!)
            for (got, want) in zip(e.values, reference.values) {
                XCTAssertEqual(got, want, accuracy: 1e-11 * scale, "LAPACK against the hand-written float64 reference, n = \(n)")
            }
            let referenceResiduals = Self.eigenResiduals(a, n: n, values: reference.values, vectors: reference.vectors)
            XCTAssertLessThan(referenceResiduals.residual, 1e-11 * scale)
            XCTAssertLessThan(referenceResiduals.orthogonality, 1e-12)
            for (got, want) in zip(e.values, lambda.sorted(by: >)) {
                XCTAssertEqual(got, want, accuracy: 1e-11 * scale, "eigenvalue, n = \(n)")
            }
            let (residual, orthogonality) = Self.eigenResiduals(a, e)
            XCTAssertLessThan(residual, 1e-11 * scale, "‖AV − VΛ‖max, n = \(n)")
            XCTAssertLessThan(orthogonality, 1e-12, "‖VᵀV − I‖max, n = \(n)")
        }
        // Diagonal and zero matrices.
        let diagonal = try SymmetricEigendecomposition(symmetric: [2, 0, 0, 0, -1, 0, 0, 0, 5], dimension: 3)
        XCTAssertEqual(diagonal.values, [5, 2, -1])
        XCTAssertEqual(diagonal.vectors.map(abs), [0, 0, 1, 1, 0, 0, 0, 1, 0])
        let zero = try SymmetricEigendecomposition(symmetric: [Double](repeating: 0, count: 16), dimension: 4)
        XCTAssertEqual(zero.values, [0, 0, 0, 0])
        XCTAssertLessThan(Self.eigenResiduals([Double](repeating: 0, count: 16), zero).orthogonality, 1e-15)
    }

    func testEigendecompositionLargeIsFastAndAccurate() throws {
        var rng = TestRandom.generator(self)
        let n = 300
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0...i { let v = Self.normal(&rng); a[i * n + j] = v; a[j * n + i] = v } }
        let start = Date()
        let e = try SymmetricEigendecomposition(symmetric: a, dimension: n)
        let seconds = Date().timeIntervalSince(start)
        let reference = ReferenceSymmetricEigendecomposition(symmetric: a, dimension: n)
        for (got, want) in zip(e.values, reference.values) { XCTAssertEqual(got, want, accuracy: 1e-10 * Double(n)) }
        print("eigendecomposition of a \(n)×\(n) matrix: \(String(format: "%.2f", seconds)) s")
        XCTAssertLessThan(seconds, 20, "a 300×300 eigendecomposition should take seconds, not minutes (debug build)")
        let trace = (0..<n).reduce(0.0) { $0 + a[$1 * n + $1] }
        XCTAssertEqual(e.values.reduce(0, +), trace, accuracy: 1e-9 * Double(n))
        XCTAssertEqual(e.values, e.values.sorted(by: >))
        let (residual, orthogonality) = Self.eigenResiduals(a, e)
        let norm = e.values.map(abs).max()!
        XCTAssertLessThan(residual, 1e-11 * norm, "‖AV − VΛ‖max")
        XCTAssertLessThan(orthogonality, 1e-11, "‖VᵀV − I‖max")
    }

    /// Fewer points than dimensions: the n×n Gram path gives the singular values and right singular vectors of a
    /// float64 reference (the d×d Gram decomposed by the hand-written reference), up to each vector's sign, and
    /// the raw-pixel case the issue timed (5 points of 3,072 dimensions) takes well under a second.
    func testWhiteningWithFewerPointsThanDimensions() throws {
        let seed = TestRandom.seed(self)
        try TestDevices.forEach { device in
            var rng = SeededGenerator(seed: seed)
            let n = 7, d = 30
            let x = (0..<(n * d)).map { _ in Float(Self.normal(&rng) * 2 + 1) }
            let w = try Whitening(fitting: x, rows: n, columns: d, on: device)
            XCTAssertEqual(w.outputDimension, n)
            let xd = x.map(Double.init)
            let mean = (0..<d).map { j in (0..<n).reduce(0.0) { $0 + xd[$1 * d + j] } / Double(n) }
            var gram = [Double](repeating: 0, count: d * d)
            for r in 0..<n { for i in 0..<d { for j in 0..<d { gram[i * d + j] += (xd[r * d + i] - mean[i]) * (xd[r * d + j] - mean[j]) } } }
            let reference = ReferenceSymmetricEigendecomposition(symmetric: gram, dimension: d)
            // Rank n − 1 after centring: the first n − 1 directions are determined, the last is null.
            for j in 0..<(n - 1) {
                let want = max(reference.values[j], 0).squareRoot()
                XCTAssertEqual(w.singularValues[j], want, accuracy: 1e-4 * want, "singular value \(j) on \(device.id)")
                let dot = (0..<d).reduce(0.0) { $0 + Double(w.components[j * d + $1]) * reference.vectors[j * d + $1] }
                XCTAssertEqual(abs(dot), 1, accuracy: 1e-4, "direction \(j) on \(device.id)")
            }
            XCTAssertLessThan(w.singularValues[n - 1], 1e-3 * w.singularValues[0])
            // Whitened training rows: unit-variance-like columns, XᵀX ≈ I on the determined directions.
            let y = try w.apply(Tensor(shape: [n, d], values: x, on: device)).toArray().map(Double.init)
            for i in 0..<(n - 1) {
                let dot = (0..<n).reduce(0.0) { $0 + y[$1 * n + i] * y[$1 * n + i] }
                XCTAssertEqual(dot, 1, accuracy: 1e-3, "whitened column \(i) on \(device.id)")
            }
        }
        var rng = SeededGenerator(seed: seed)
        let pixels = (0..<(5 * 3072)).map { _ in Float.random(in: -1...1, using: &rng) }
        let start = Date()
        let w = try Whitening(fitting: pixels, rows: 5, columns: 3072, on: TestDevices.cpu)
        let seconds = Date().timeIntervalSince(start)
        print("whitening of 5 points of 3072 dimensions: \(String(format: "%.3f", seconds)) s")
        XCTAssertEqual(w.outputDimension, 5)
        XCTAssertLessThan(seconds, 5, "the n×n Gram path is O(n²d)")
    }

    /// Whitened training data satisfy XᵀX = diag(s²/(s + 1e-5)²) ≈ I (so the covariance is I/n); apply matches a
    /// float64 evaluation of ((x − mean)·V)/(s + 1e-5); the singular values match a float64 Gram matrix.
    func testWhiteningOnCorrelatedData() throws {
        let seed = TestRandom.seed(self)
        try TestDevices.forEach { device in
            var rng = SeededGenerator(seed: seed)
            let n = 500, d = 13
            // x = z·M + offset with M well conditioned (identity plus a random part), so x is correlated.
            let m = (0..<(d * d)).map { i in (i % (d + 1) == 0 ? 2.0 : 0) + 0.4 * Self.normal(&rng) }
            let offset = (0..<d).map { _ in Double.random(in: -3...3, using: &rng) }
            var x = [Float](repeating: 0, count: n * d)
            for r in 0..<n {
                let z = (0..<d).map { _ in Self.normal(&rng) }
                for j in 0..<d { x[r * d + j] = Float(offset[j] + (0..<d).reduce(0) { $0 + z[$1] * m[$1 * d + j] }) }
            }
            let whitening = try assertLaunches(on: device, "whitening fit on \(device.id)") {
                try Whitening(fitting: x, rows: n, columns: d, on: device, chunkRows: 128)
            }
            XCTAssertEqual(whitening.inputDimension, d)
            XCTAssertEqual(whitening.outputDimension, d)

            // Mean and singular values against float64 (from the float32 inputs).
            let xd = x.map(Double.init)
            let mean = (0..<d).map { j in (0..<n).reduce(0.0) { $0 + xd[$1 * d + j] } / Double(n) }
            assertClose(actual: whitening.mean, expected: mean, atol: 1e-5, rtol: 1e-5, context: "mean on \(device.id)")
            var gram = [Double](repeating: 0, count: d * d)
            for r in 0..<n { for i in 0..<d { for j in 0..<d { gram[i * d + j] += (xd[r * d + i] - mean[i]) * (xd[r * d + j] - mean[j]) } } }
            let reference = ReferenceSymmetricEigendecomposition(symmetric: gram, dimension: d).values.map { max($0, 0).squareRoot() }
            for (got, want) in zip(whitening.singularValues, reference) {
                XCTAssertEqual(got, want, accuracy: 1e-4 * want, "singular value on \(device.id)")
            }

            // XᵀX of the whitened training data.
            let y = try whitening.apply(Tensor(shape: [n, d], values: x, on: device))
            XCTAssertEqual(y.shape, [n, d])
            let yv = try y.toArray().map(Double.init)
            var worst = 0.0
            for i in 0..<d {
                for j in 0..<d {
                    let dot = (0..<n).reduce(0.0) { $0 + yv[$1 * d + i] * yv[$1 * d + j] }
                    let s = whitening.singularValues[i]
                    let expected = i == j ? s * s / ((s + Whitening.epsilon) * (s + Whitening.epsilon)) : 0
                    worst = max(worst, abs(dot - expected))
                }
            }
            // Float32 errors are amplified by the condition number squared (κ = s_max/s_min): observed worst
            // deviations ≈ 4e-8·κ²; the bound allows 5× that.
            let kappa = whitening.singularValues[0] / whitening.singularValues[d - 1]
            let bound = 1e-6 + 2e-7 * kappa * kappa
            XCTAssertLessThan(worst, bound, "whitened XᵀX must be the identity within \(bound) (κ = \(kappa)) on \(device.id)")
            // The columns of the whitened data have mean 0.
            for j in 0..<d {
                XCTAssertEqual((0..<n).reduce(0.0) { $0 + yv[$1 * d + j] } / Double(n), 0, accuracy: 1e-6)
            }

            // apply on other points against float64 evaluation of the fitted parameters.
            let other = (0..<(7 * d)).map { _ in Float(Double.random(in: -5...5, using: &rng)) }
            let got = try whitening.apply(Tensor(shape: [7, d], values: other, on: device)).toArray()
            var expected = [Double](repeating: 0, count: 7 * d)
            for r in 0..<7 {
                for c in 0..<d {
                    var dot = 0.0
                    for j in 0..<d { dot += (Double(other[r * d + j]) - Double(whitening.mean[j])) * Double(whitening.components[c * d + j]) }
                    expected[r * d + c] = dot / (whitening.singularValues[c] + Whitening.epsilon)
                }
            }
            assertClose(actual: got, expected: expected, tolerance: .sum(d), context: "whitening apply on \(device.id)")
        }
    }

    /// Fewer rows than features: like NumPy's svd(full_matrices=False), min(n, d) directions are kept.
    func testWhiteningKeepsMinOfRowsAndColumns() throws {
        var rng = TestRandom.generator(self)
        let n = 5, d = 9
        let x = (0..<(n * d)).map { _ in Float(Self.normal(&rng)) }
        let whitening = try Whitening(fitting: x, rows: n, columns: d, on: TestDevices.cpu)
        XCTAssertEqual(whitening.outputDimension, n)
        XCTAssertEqual(whitening.components.count, n * d)
        // Centring removes one direction: the smallest singular value is (numerically) zero.
        XCTAssertLessThan(whitening.singularValues[n - 1], 1e-3 * whitening.singularValues[0])
        XCTAssertEqual(try whitening.apply(Tensor(shape: [n, d], values: x, on: TestDevices.cpu)).shape, [n, n])
    }

    // MARK: k-means

    func testKMeansRecoversSeparatedBlobs() throws {
        let seed = TestRandom.seed(self)
        try TestDevices.forEach { device in
            var rng = SeededGenerator(seed: seed)
            let k = 5, d = 7
            let centres = Self.centres(k, dimensions: d, separation: 8, rng: &rng)
            let (points, labels) = Self.blobs(centres: centres, perClass: 80, sigma: 0.5, rng: &rng)
            let n = labels.count
            XCTAssertEqual(n, 400)
            let x = try Tensor(shape: [n, d], values: points, on: device)
            // 300 random initialisations: a draw that hits every blob once has probability 5!/5⁵ ≈ 3.8 %.
            let kmeans = KMeans(clusters: k, initializations: 300, maxIterations: 100, seed: seed)
            let result = try assertLaunches(on: device, "k-means on \(device.id)") { try kmeans.fit(x) }
            XCTAssertEqual(result.assignments.count, n)
            XCTAssertEqual(clusteringAccuracy(assignments: result.assignments, labels: labels, clusters: k, classes: k), 100,
                           "k-means on \(device.id)")
            XCTAssertGreaterThanOrEqual(result.iterations, 1)

            // Centroids are the blob sample means; inertia is the within-blob sum of squares (float64 references).
            var means = [Double](repeating: 0, count: k * d), counts = [Double](repeating: 0, count: k)
            for (i, l) in labels.enumerated() {
                counts[l] += 1
                for j in 0..<d { means[l * d + j] += Double(points[i * d + j]) }
            }
            for l in 0..<k { for j in 0..<d { means[l * d + j] /= counts[l] } }
            var inertia = 0.0
            for (i, l) in labels.enumerated() {
                for j in 0..<d { inertia += pow(Double(points[i * d + j]) - means[l * d + j], 2) }
            }
            XCTAssertEqual(result.inertia, inertia, accuracy: 1e-3 * inertia, "inertia on \(device.id)")
            let clusterOfLabel = (0..<k).map { l in result.assignments[labels.firstIndex(of: l)!] }
            var expected = [Double](repeating: 0, count: k * d)
            for l in 0..<k { for j in 0..<d { expected[clusterOfLabel[l] * d + j] = means[l * d + j] } }
            assertClose(actual: result.centroids, expected: expected, atol: 1e-4, rtol: 1e-5, context: "centroids on \(device.id)")

            // New points from the same blobs are predicted into their blob's cluster.
            let (fresh, freshLabels) = Self.blobs(centres: centres, perClass: 20, sigma: 0.5, rng: &rng)
            let predicted = try result.predict(Tensor(shape: [freshLabels.count, d], values: fresh, on: device))
            XCTAssertEqual(predicted, freshLabels.map { clusterOfLabel[$0] }, "predict on \(device.id)")
        }
    }

    /// Runs are independent of how many iterate side by side (same iterations, same inertia), the progress callback
    /// reports every run, and the winner has the smallest inertia.
    func testKMeansBatchingAndProgress() throws {
        var rng = TestRandom.generator(self)
        let seed = rng.next()
        let (points, _) = Self.blobs(centres: Self.centres(4, dimensions: 3, separation: 3, rng: &rng), perClass: 40,
                                     sigma: 1, rng: &rng)
        let x = try Tensor(shape: [160, 3], values: points, on: TestDevices.cpu)
        final class Log: @unchecked Sendable {
            let lock = NSLock()
            var entries: [KMeans.Progress] = []
            func add(_ p: KMeans.Progress) { lock.withLock { entries.append(p) } }
        }
        var reports: [[Int: KMeans.Progress]] = []
        var results: [KMeans.Result] = []
        for width in [1, 7, 64] {
            let log = Log()
            let kmeans = KMeans(clusters: 4, initializations: 25, maxIterations: 300, seed: seed, parallelRuns: width,
                                progress: { log.add($0) })
            results.append(try kmeans.fit(x))
            XCTAssertEqual(log.entries.map(\.completed), Array(1...25), "width \(width)")
            XCTAssertEqual(Set(log.entries.map(\.run)), Set(0..<25), "width \(width)")
            XCTAssertEqual(log.entries.last?.bestInertia, log.entries.map(\.inertia).min())
            reports.append(Dictionary(uniqueKeysWithValues: log.entries.map { ($0.run, $0) }))
        }
        // Per-run inertia is the iteration's expansion form: absolute error ~1e-7·Σ‖x − mean‖²; allow 1e-5 of it.
        let xd = points.map(Double.init)
        let totalSquares = (0..<3).reduce(0.0) { total, j in
            let column = stride(from: j, to: xd.count, by: 3).map { xd[$0] }
            let mean = column.reduce(0, +) / Double(column.count)
            return total + column.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        }
        let slack = 1e-5 * totalSquares
        for run in 0..<25 {
            for w in 1..<reports.count {
                XCTAssertEqual(reports[w][run]?.iterations, reports[0][run]?.iterations, "run \(run) iterations")
                XCTAssertEqual(reports[w][run]!.inertia, reports[0][run]!.inertia, accuracy: slack, "run \(run) inertia")
            }
        }
        for r in results {
            XCTAssertEqual(r.inertia, results[0].inertia, accuracy: slack)
            XCTAssertEqual(r.inertia, reports[0].values.map(\.inertia).min()!, accuracy: slack)
        }
    }

    /// Empty clusters: more clusters than distinct points forces relocations and nothing breaks; a lopsided set
    /// reaches the optimum only through relocation (without it the inertia stays 50). Invalid arguments throw.
    func testKMeansEmptyClustersAndErrors() throws {
        let seed = TestRandom.seed(self)
        try TestDevices.forEach { device in
            // 3 distinct locations, 4 copies each, 4 clusters: two initial centroids share a location, and the
            // first wins the tie, so a cluster is empty in the first step.
            let locations: [[Float]] = [[0, 0], [10, 0], [0, 10]]
            let points = (0..<12).flatMap { locations[$0 % 3] }
            let x = try Tensor(shape: [12, 2], values: points, on: device)
            let result = try KMeans(clusters: 4, initializations: 5, maxIterations: 50, seed: seed).fit(x)
            XCTAssertEqual(result.inertia, 0, accuracy: 1e-5, "on \(device.id)")
            XCTAssertTrue(result.assignments.allSatisfy { (0..<4).contains($0) })
            XCTAssertEqual(clusteringAccuracy(assignments: result.assignments, labels: (0..<12).map { $0 % 3 },
                                              clusters: 4, classes: 3), 100)

            // 50 copies of (0, 0), one (10, 0), one (20, 0), 3 clusters: a random start almost surely puts two
            // centroids on (0, 0), leaving one empty; only relocation (onto the farthest point) reaches inertia 0.
            let lopsided = (0..<52).flatMap { i -> [Float] in i < 50 ? [0, 0] : i == 50 ? [10, 0] : [20, 0] }
            let lopsidedLabels = (0..<52).map { $0 < 50 ? 0 : $0 - 49 }
            let relocated = try KMeans(clusters: 3, initializations: 3, maxIterations: 50, seed: seed)
                .fit(Tensor(shape: [52, 2], values: lopsided, on: device))
            XCTAssertEqual(relocated.inertia, 0, accuracy: 1e-4, "relocation on \(device.id)")
            XCTAssertEqual(clusteringAccuracy(assignments: relocated.assignments, labels: lopsidedLabels, clusters: 3,
                                              classes: 3), 100, "relocation on \(device.id)")

            XCTAssertThrowsError(try KMeans(clusters: 13, initializations: 1, maxIterations: 5, seed: seed).fit(x))
            XCTAssertThrowsError(try KMeans(clusters: 2, initializations: 0, maxIterations: 5, seed: seed).fit(x))
        }
    }

    // MARK: the protocol

    func testClusterAccuracyProtocolOnBlobs() throws {
        let seed = TestRandom.seed(self)
        try TestDevices.forEach { device in
            var rng = SeededGenerator(seed: seed)
            let classes = 4, d = 6
            let centres = Self.centres(classes, dimensions: d, separation: 9, rng: &rng)
            let train = Self.blobs(centres: centres, perClass: 150, sigma: 0.6, rng: &rng)
            let test = Self.blobs(centres: centres, perClass: 50, sigma: 0.6, rng: &rng)
            // Features as [n, 2, 3] (flattened by the protocol), as encoder outputs would be.
            let trainT = try Tensor(shape: [600, 2, 3], values: train.points, on: device)
            let testT = try Tensor(shape: [200, 2, 3], values: test.points, on: device)
            let kmeans = KMeans(clusters: classes, initializations: 100, maxIterations: 300, seed: seed)
            for whiten in [true, false] {
                let (accuracy, inertia) = try clusterAccuracy(train: trainT, test: testT, testLabels: test.labels,
                                                              classes: classes, kmeans: kmeans, whiten: whiten)
                XCTAssertEqual(accuracy, 100, "whiten \(whiten) on \(device.id)")
                XCTAssertGreaterThan(inertia, 0)
                if whiten {
                    // Whitened training data has Σ‖x‖² = Σ s²/(s+ε)² ≈ d, and clustering explains most of it.
                    XCTAssertLessThan(inertia, Double(d))
                }
            }
            XCTAssertThrowsError(try clusterAccuracy(train: trainT, test: testT, testLabels: Array(test.labels.prefix(10)),
                                                     classes: classes, kmeans: kmeans))
        }
    }
}
