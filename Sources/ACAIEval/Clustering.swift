import ACAI
import Foundation

/// K-means with random initialisation and Lloyd iterations on the device, best of several initialisations
/// (scikit-learn's `KMeans(init='random', n_init=…, max_iter=…, tol=…)`, as the reference's `cluster.py` uses).
///
/// - Initialisation: `clusters` distinct data points drawn uniformly at random (sklearn's `init='random'`). Run
///   i draws from its own generator seeded by (`seed`, i), so a run's result does not depend on how runs are
///   batched. The draws are not NumPy's, so results match sklearn's in distribution, not bit for bit.
/// - Lloyd iteration, on the device: squared distances ‖x‖² − 2x·cᵀ + ‖c‖² (the ‖x‖² term, equal for all
///   centroids, is left out of the argmin) by one product, argmin over the centroids, new centroids as
///   oneHot(assignment)ᵀ·x / counts (one product with [x | 1 | ‖x‖²] gives sums, counts and the inertia's
///   terms; the division and the convergence test are k·d numbers on the host). Several initialisations run
///   side by side (their centroids stacked into one [runs·k, d] matrix), which turns the skinny products into
///   wide ones (about 3× less time per run-iteration on the CPU device at n = 60000, d = 256, k = 10).
/// - Empty clusters (sklearn's `_relocate_empty_clusters`): each empty cluster is moved onto one of the points
///   farthest from their own centroid (the farthest for the first empty cluster, the next for the second, …),
///   and that point is taken out of the cluster it was in.
/// - Convergence (sklearn's rule): stop when the squared centroid shift Σ‖c_new − c_old‖² ≤ tolerance × (mean
///   per-feature variance of the data); a shift of exactly 0 means the assignments no longer change (sklearn's
///   "strict convergence"). Otherwise, and after `maxIterations` updates, one more assignment step against the
///   final centroids gives the run's assignments and inertia.
/// - The data are centred (their mean subtracted) for float32 precision while fitting, as sklearn does; the
///   centroids are reported in the original coordinates.
/// - The run with the smallest inertia (sum of squared distances to the assigned centroid) wins; on a tie the
///   earlier run. Runs are compared by the inertia the iteration computes anyway, Σ_c (Σ‖x‖² − 2c·Σx + n_c‖c‖²),
///   whose absolute error is ~1e-7·Σ‖x − mean‖² (float32 cancellation); the winner's reported inertia is
///   recomputed from the squared differences themselves.
public struct KMeans: Sendable {
    public var clusters: Int
    public var initializations: Int
    public var maxIterations: Int
    public var seed: UInt64
    /// Relative to the mean per-feature variance, like sklearn's `tol`.
    public var tolerance: Double
    /// How many initialisations iterate side by side; nil picks the most whose [n, runs·k] distance matrix
    /// holds at most 2²³ values (at most 64 runs).
    public var parallelRuns: Int?
    /// Called after each finished initialisation (for long runs such as the reference's 1000).
    public var progress: (@Sendable (Progress) -> Void)?

    public init(clusters: Int, initializations: Int, maxIterations: Int, seed: UInt64, tolerance: Double = 1e-4,
                parallelRuns: Int? = nil, progress: (@Sendable (Progress) -> Void)? = nil) {
        self.clusters = clusters
        self.initializations = initializations
        self.maxIterations = maxIterations
        self.seed = seed
        self.tolerance = tolerance
        self.parallelRuns = parallelRuns
        self.progress = progress
    }

    /// The reference's settings: `KMeans(init='random', n_clusters=classes, n_init=1000, max_iter=1000,
    /// random_state=0)` (tol 1e-4).
    public static func reference(classes: Int) -> KMeans {
        KMeans(clusters: classes, initializations: 1000, maxIterations: 1000, seed: 0)
    }

    /// Reported after each finished initialisation.
    public struct Progress: Sendable {
        /// Initialisations finished so far, and in all.
        public var completed: Int
        public var total: Int
        /// The run that just finished: its index, Lloyd updates and inertia.
        public var run: Int
        public var iterations: Int
        public var inertia: Double
        /// The best inertia so far.
        public var bestInertia: Double
    }

    /// A fitted clustering.
    public struct Result: Sendable {
        public let clusters: Int
        public let dimensions: Int
        /// Centroids, [clusters, dimensions] row-major, in the input's coordinates.
        public let centroids: [Float]
        /// Sum over the training points of the squared distance to their centroid.
        public let inertia: Double
        /// Lloyd updates of the winning run (sklearn's `n_iter_`).
        public let iterations: Int
        /// Index of the winning initialisation.
        public let run: Int
        /// Cluster of each training point, in `0..<clusters`.
        public let assignments: [Int]

        /// The centroids as a [clusters, dimensions] tensor on `device`.
        public func centroidTensor(on device: any Device) throws -> Tensor {
            try Tensor(shape: [clusters, dimensions], values: centroids, on: device)
        }

        /// The nearest centroid of each row of `x` ([n, ...] flattened to [n, dimensions]), on x's device.
        public func predict(_ x: Tensor) throws -> [Int] {
            let flat = try x.detached().flattened()
            guard flat.shape[1] == dimensions else {
                throw DeviceError.invalidArgument("k-means fitted on \(dimensions) features, got \(x.shape)")
            }
            return try KMeans.nearest(flat, centroids: centroidTensor(on: flat.device))
        }
    }

    /// Index of the nearest centroid ([k, d]) for each row of `x` ([n, d]): argmin over the centroids of
    /// ‖c‖² − 2c·x, computed on the device as a [k, n] matrix (so the argmin runs along contiguous rows).
    public static func nearest(_ x: Tensor, centroids: Tensor) throws -> [Int] {
        try nearestIndices(x, centroids: centroids).toArray().map { Int($0) }
    }

    /// `nearest` as an [n] tensor of integral floats.
    static func nearestIndices(_ x: Tensor, centroids: Tensor) throws -> Tensor {
        let c = centroids.detached()
        let cNorm = try c.square().sum(axes: [1], keepDims: true)                     // [k, 1]
        let scores = try (c * -2).matmul(x.detached(), transposeB: true) + cNorm    // [k, n]
        return try scores.argmin(axis: 0)
    }

    /// One initialisation in flight: its centroids (centred coordinates, [k·d]) and state.
    private struct Run {
        let index: Int
        var centroids: [Float]
        var iterations = 0
        /// Converged (or out of iterations): the next step only assigns, for the final inertia.
        var finalising = false
    }

    /// Fits on `x` ([n, ...] flattened to [n, d]; n ≥ clusters) on its device.
    public func fit(_ input: Tensor) throws -> Result {
        guard clusters >= 1, initializations >= 1, maxIterations >= 1, tolerance >= 0 else {
            throw DeviceError.invalidArgument("k-means needs clusters, initializations, maxIterations ≥ 1 and tolerance ≥ 0")
        }
        let raw = try input.detached().flattened()
        let n = raw.shape[0], d = raw.shape[1], k = clusters
        guard n >= k else { throw DeviceError.invalidArgument("k-means with \(k) clusters needs at least \(k) points, got \(n)") }
        guard n <= 1 << 24 else { throw DeviceError.invalidArgument("k-means takes at most 2²⁴ points (float row indices), got \(n)") }
        let device = raw.device

        // Centre the data (sklearn does too); append a column of ones and one of ‖x‖², so that one product
        // oneHotᵀ·[x | 1 | ‖x‖²] gives each cluster's sum of points, count and sum of squared norms.
        let mean = try raw.sum(axes: [0]).toArray().map { $0 / Float(n) }
        let x = try raw - Tensor(shape: [1, d], values: mean, on: device)
        let squares = try x.square()
        let xNorm = try squares.sum(axes: [1], keepDims: true)                          // [n, 1]
        let augmented = try Tensor.concat([x, Tensor.full([n, 1], 1, on: device), xNorm], axis: 1)  // [n, d+2]
        let columnSquares = try squares.sum(axes: [0]).toArray()
        guard columnSquares.allSatisfy(\.isFinite) else {
            throw DeviceError.invalidArgument("k-means: the data contain non-finite values")
        }
        let meanVariance = columnSquares.reduce(0.0) { $0 + Double($1) } / Double(n * d)
        let shiftTolerance = tolerance * meanVariance
        var identities: [Int: Tensor] = [:]

        let width = parallelRuns ?? Swift.max(1, Swift.min(64, (1 << 23) / Swift.max(1, n * k)))
        var next = 0, finished = 0
        var active: [Run] = []
        var best: (inertia: Double, run: Run)?

        while finished < initializations {
            var fresh: [Int] = []
            while active.count + fresh.count < Swift.max(1, width), next < initializations {
                fresh.append(next)
                next += 1
            }
            if !fresh.isEmpty { active += try initialRuns(fresh, x: x, n: n, d: d) }

            let m = active.count
            if identities[m] == nil {
                identities[m] = try Tensor(shape: [m, m], values: (0..<(m * m)).map { $0 % (m + 1) == 0 ? 1 : 0 },
                                           on: device)
            }
            let step = try lloydStep(x: x, augmented: augmented, identity: identities[m]!, runs: active, d: d)
            var done: [(Run, Double)] = []
            var kept: [Run] = []
            var needsRelocation: [Int] = []
            for r in 0..<m where !active[r].finalising && (0..<k).contains(where: { step.counts[r * k + $0] == 0 }) {
                needsRelocation.append(r)
            }
            var sums = step.sums, counts = step.counts
            if !needsRelocation.isEmpty {
                try relocateEmptyClusters(runs: needsRelocation, step: step, sums: &sums, counts: &counts, x: x,
                                          xNorm: xNorm, n: n, d: d)
            }
            for r in 0..<m {
                var run = active[r]
                let inertia = step.inertia[r]
                if run.finalising {
                    done.append((run, inertia))
                    continue
                }
                var shift = 0.0
                var updated = run.centroids
                for c in 0..<k where counts[r * k + c] > 0 {
                    let count = counts[r * k + c]
                    for j in 0..<d {
                        let value = Float(sums[(r * k + c) * d + j] / count)
                        let delta = Double(value) - Double(run.centroids[c * d + j])
                        shift += delta * delta
                        updated[c * d + j] = value
                    }
                }
                run.centroids = updated
                run.iterations += 1
                if shift == 0 {
                    // Nothing moved: this step's assignments and inertia are those of the final centroids.
                    done.append((run, inertia))
                } else {
                    run.finalising = shift <= shiftTolerance || run.iterations >= maxIterations
                    kept.append(run)
                }
            }
            for (run, inertia) in done {
                finished += 1
                if best == nil || inertia < best!.inertia || (inertia == best!.inertia && run.index < best!.run.index) {
                    best = (inertia, run)
                }
                progress?(Progress(completed: finished, total: initializations, run: run.index,
                                   iterations: run.iterations, inertia: inertia, bestInertia: best!.inertia))
            }
            active = kept
        }

        guard let winner = best else { throw DeviceError.invalidArgument("k-means: no run finished") }
        let centred = try Tensor(shape: [k, d], values: winner.run.centroids, on: device)
        let nearest = try KMeans.nearestIndices(x, centroids: centred)
        let assignments = try nearest.toArray().map { Int($0) }
        // The reported inertia from the squared differences themselves (the expansion used while iterating
        // loses absolute precision ~1e-7·Σ‖x‖² to cancellation; this is accurate relative to the inertia).
        let inertia = try (x - centred.gatherRows(nearest)).square().sum(axes: [1]).toArray()
            .reduce(0.0) { $0 + Double($1) }
        var centroids = winner.run.centroids
        for c in 0..<k {
            for j in 0..<d { centroids[c * d + j] += mean[j] }
        }
        return Result(clusters: k, dimensions: d, centroids: centroids, inertia: inertia,
                      iterations: winner.run.iterations, run: winner.run.index, assignments: assignments)
    }

    /// Runs for the initialisation indices `indices`: each starts at `clusters` distinct random rows of `x`.
    private func initialRuns(_ indices: [Int], x: Tensor, n: Int, d: Int) throws -> [Run] {
        let k = clusters
        var rows: [Float] = []
        for index in indices {
            var rng = SplitMix64(seed: mixSeeds(seed, UInt64(index)))
            // Partial Fisher–Yates over 0..<n with the swaps kept sparse: k distinct indices, uniformly.
            var displaced: [Int: Int] = [:]
            for i in 0..<k {
                let j = Int.random(in: i..<n, using: &rng)
                let atJ = displaced[j] ?? j
                displaced[j] = displaced[i] ?? i
                rows.append(Float(atJ))
            }
        }
        let picked = try x.gatherRows(Tensor(shape: [rows.count], values: rows, on: x.device)).toArray()
        return indices.enumerated().map { position, index in
            Run(index: index, centroids: Array(picked[(position * k * d)..<((position + 1) * k * d)]))
        }
    }

    /// What one assignment step computed for m runs side by side.
    private struct Step {
        /// Per (run, cluster): Σ of the assigned points, [m·k·d], and their count, [m·k].
        var sums: [Double]
        var counts: [Double]
        /// Per run: Σ squared distance to the assigned centroid.
        var inertia: [Double]
        /// [m·k, n] scores ‖c‖² − 2c·x and [m, n] assignments (kept for empty-cluster relocation).
        var scores: Tensor
        var assignments: Tensor
    }

    /// Assigns every point to its nearest centroid in each run and sums the points per cluster, on the device.
    ///
    /// Scores ‖c‖² − 2c·x are computed as an [m·k, n] matrix, so the argmin over each run's k centroids runs
    /// along contiguous rows of n; the [m, n] assignments are transposed to [n, m] by a product with the
    /// identity (exact: small integers times 1 plus zeros), so that their one-hot rows [n, m·k] hold one 1 per
    /// run, and one product with the augmented data gives every run's sums, counts and Σ‖x‖² per cluster.
    /// The inertia then follows on the host: Σ_c (Σ_{i∈c} ‖x_i‖² − 2c·Σ_{i∈c} x_i + n_c‖c‖²).
    private func lloydStep(x: Tensor, augmented: Tensor, identity: Tensor, runs: [Run], d: Int) throws -> Step {
        let m = runs.count, k = clusters, n = x.shape[0], width = d + 2
        var scaled = [Float](), cNorm = [Float]()
        scaled.reserveCapacity(m * k * d)
        cNorm.reserveCapacity(m * k)
        for run in runs {
            for c in 0..<k {
                var norm = 0.0
                for j in 0..<d {
                    let v = run.centroids[c * d + j]
                    norm += Double(v) * Double(v)
                    scaled.append(-2 * v)  // exact, and the product below is then −2c·x directly
                }
                cNorm.append(Float(norm))
            }
        }
        let device = x.device
        let c = try Tensor(shape: [m * k, d], values: scaled, on: device)
        let cNormT = try Tensor(shape: [m * k, 1], values: cNorm, on: device)
        let scores = try c.matmul(x, transposeB: true) + cNormT                        // [m·k, n]
        let assignments = try scores.reshaped([m, k, n]).argmin(axis: 1)             // [m, n]
        let byPoint = try assignments.matmul(identity, transposeA: true)              // [n, m]
        let oneHot = try byPoint.oneHot(depth: k).reshaped([n, m * k])               // one 1 per run in a row
        let totals = try oneHot.matmul(augmented, transposeA: true).toArray()        // [m·k, d+2]

        var sums = [Double](repeating: 0, count: m * k * d), counts = [Double](repeating: 0, count: m * k)
        var inertia = [Double](repeating: 0, count: m)
        for (r, run) in runs.enumerated() {
            for cluster in 0..<k {
                let row = (r * k + cluster) * width
                var dot = 0.0, norm = 0.0
                for j in 0..<d {
                    let s = Double(totals[row + j]), v = Double(run.centroids[cluster * d + j])
                    sums[(r * k + cluster) * d + j] = s
                    dot += s * v
                    norm += v * v
                }
                let count = Double(totals[row + d])
                counts[r * k + cluster] = count
                inertia[r] += Double(totals[row + d + 1]) - 2 * dot + count * norm
            }
            inertia[r] = Swift.max(inertia[r], 0)
        }
        return Step(sums: sums, counts: counts, inertia: inertia, scores: scores, assignments: assignments)
    }

    /// Moves each empty cluster of the listed runs (positions in the step) onto the points farthest from their
    /// centroid, taking each such point out of its old cluster (sklearn's `_relocate_empty_clusters_dense`), in
    /// `sums`/`counts`.
    private func relocateEmptyClusters(runs: [Int], step: Step, sums: inout [Double], counts: inout [Double],
                                       x: Tensor, xNorm: Tensor, n: Int, d: Int) throws {
        let k = clusters
        let norms = try xNorm.toArray()
        var moves: [(run: Int, cluster: Int, point: Int, from: Int)] = []
        for r in runs {
            let labels = try step.assignments.slice(r..<(r + 1)).toArray().map { Int($0) }   // [n]
            let scores = try step.scores.slice((r * k)..<((r + 1) * k)).toArray()          // [k, n]
            let own = (0..<n).map { Double(norms[$0]) + Double(scores[labels[$0] * n + $0]) }
            let empty = (0..<k).filter { counts[r * k + $0] == 0 }
            let farthest = (0..<n).sorted { own[$0] > own[$1] || (own[$0] == own[$1] && $0 < $1) }
            for (cluster, point) in zip(empty, farthest) { moves.append((r, cluster, point, labels[point])) }
        }
        let points = try x.gatherRows(Tensor(shape: [moves.count], values: moves.map { Float($0.point) }, on: x.device))
            .toArray()
        for (i, move) in moves.enumerated() {
            let from = (move.run * k + move.from) * d, to = (move.run * k + move.cluster) * d
            if counts[move.run * k + move.from] > 1 {
                for j in 0..<d { sums[from + j] -= Double(points[i * d + j]) }
                counts[move.run * k + move.from] -= 1
            }
            for j in 0..<d { sums[to + j] = Double(points[i * d + j]) }
            counts[move.run * k + move.cluster] = 1
        }
    }
}

/// SplitMix64 for the initialisations' draws (one generator per run).
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The reference's clustering protocol (`cluster.py`): optionally SVD-whiten with the training statistics
/// (`Whitening`), fit `kmeans` on the training features, assign the test features to the nearest centroid, and
/// score them against `testLabels` (in `0..<classes`) with the best one-to-one mapping of clusters to classes
/// (`clusteringAccuracy`). `train` and `test` are [n, ...] features on one device (flattened). Returns the test
/// accuracy in percent and the k-means inertia on the (whitened) training features.
public func clusterAccuracy(train: Tensor, test: Tensor, testLabels: [Int], classes: Int, kmeans: KMeans,
                            whiten: Bool = true) throws -> (accuracy: Double, inertia: Double) {
    guard test.shape.first == testLabels.count else {
        throw DeviceError.invalidArgument("clusterAccuracy: \(test.shape.first ?? 0) test rows but \(testLabels.count) labels")
    }
    guard classes >= 1, testLabels.allSatisfy({ (0..<classes).contains($0) }) else {
        throw DeviceError.invalidArgument("clusterAccuracy: test labels must lie in 0..<\(classes)")
    }
    var trainFeatures = try train.detached().flattened(), testFeatures = try test.detached().flattened()
    if whiten {
        let whitening = try Whitening(fitting: trainFeatures)
        trainFeatures = try whitening.apply(trainFeatures)
        testFeatures = try whitening.apply(testFeatures)
    }
    let fitted = try kmeans.fit(trainFeatures)
    let predicted = try fitted.predict(testFeatures)
    let accuracy = clusteringAccuracy(assignments: predicted, labels: testLabels, clusters: kmeans.clusters,
                                      classes: classes)
    return (accuracy, fitted.inertia)
}
