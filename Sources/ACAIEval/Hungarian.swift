import Foundation

/// Optimal one-to-one assignment (the Hungarian method, Kuhn–Munkres), used to match clusters to labels.
public enum Hungarian {
    /// The assignment of rows to columns that maximises the total weight Σ weights[i][assignment[i]].
    ///
    /// `weights` is a rectangular matrix of finite values (every row the same length). A rectangular matrix is
    /// padded with zero-weight rows or columns to a square one. Returns, for each row, its column; when there
    /// are more rows than columns, the rows left without a real column get −1. Among several optimal
    /// assignments (ties) any one may be returned. Runs the shortest-augmenting-path form of Kuhn–Munkres with
    /// dual potentials (Jonker–Volgenant style), O(n³) for n = max(rows, columns).
    public static func maximumMatching(_ weights: [[Double]]) -> [Int] {
        let rows = weights.count
        guard rows > 0 else { return [] }
        let columns = weights[0].count
        precondition(weights.allSatisfy { $0.count == columns }, "Hungarian: rows of different lengths")
        precondition(weights.allSatisfy { $0.allSatisfy(\.isFinite) }, "Hungarian: weights must be finite")
        guard columns > 0 else { return Array(repeating: -1, count: rows) }
        let n = max(rows, columns)
        // Minimise cost = −weight on the zero-padded n×n matrix (row-major).
        var cost = [Double](repeating: 0, count: n * n)
        for i in 0..<rows {
            for j in 0..<columns { cost[i * n + j] = -weights[i][j] }
        }
        let columnOfRow = minimumAssignment(cost: cost, size: n)
        return (0..<rows).map { columnOfRow[$0] < columns ? columnOfRow[$0] : -1 }
    }

    /// Minimum-cost perfect matching of a square `size`×`size` row-major cost matrix; returns each row's column.
    ///
    /// Rows are added one at a time; each addition grows a shortest-path tree (reduced costs
    /// cost − u[row] − v[column] ≥ 0) from the new row until it reaches a free column, updating the potentials
    /// by the tree's slack, then flips the alternating path. Indices are 1-based inside, 0 being a sentinel.
    static func minimumAssignment(cost: [Double], size n: Int) -> [Int] {
        var u = [Double](repeating: 0, count: n + 1)   // row potentials
        var v = [Double](repeating: 0, count: n + 1)   // column potentials
        var rowOfColumn = [Int](repeating: 0, count: n + 1)  // p: row matched to column j (0 = free)
        var way = [Int](repeating: 0, count: n + 1)    // previous column on the shortest path
        var minSlack = [Double](repeating: 0, count: n + 1)
        var used = [Bool](repeating: false, count: n + 1)
        for row in 1...n {
            rowOfColumn[0] = row
            var j0 = 0
            for j in 0...n {
                minSlack[j] = .infinity
                used[j] = false
            }
            repeat {
                used[j0] = true
                let i0 = rowOfColumn[j0]
                var delta = Double.infinity
                var j1 = 0
                for j in 1...n where !used[j] {
                    let reduced = cost[(i0 - 1) * n + (j - 1)] - u[i0] - v[j]
                    if reduced < minSlack[j] {
                        minSlack[j] = reduced
                        way[j] = j0
                    }
                    if minSlack[j] < delta {
                        delta = minSlack[j]
                        j1 = j
                    }
                }
                precondition(j1 != 0, "Hungarian: no augmenting column (non-finite costs?)")
                for j in 0...n {
                    if used[j] {
                        u[rowOfColumn[j]] += delta
                        v[j] -= delta
                    } else {
                        minSlack[j] -= delta
                    }
                }
                j0 = j1
            } while rowOfColumn[j0] != 0
            // Flip the alternating path back to the root.
            repeat {
                let j1 = way[j0]
                rowOfColumn[j0] = rowOfColumn[j1]
                j0 = j1
            } while j0 != 0
        }
        var columnOfRow = [Int](repeating: -1, count: n)
        for j in 1...n where rowOfColumn[j] != 0 {
            columnOfRow[rowOfColumn[j] - 1] = j - 1
        }
        return columnOfRow
    }
}

/// Clustering accuracy in percent: the share of points whose cluster, mapped to a class by the best one-to-one
/// mapping of clusters to classes, equals their label (the reference's `error` in `cluster.py`: the Hungarian
/// method on the clusters × classes contingency table). With more clusters than classes, points of unmatched
/// clusters count as errors. `assignments` and `labels` have one entry per point, in `0..<clusters` and
/// `0..<classes`; an empty input gives 0.
public func clusteringAccuracy(assignments: [Int], labels: [Int], clusters: Int, classes: Int) -> Double {
    precondition(assignments.count == labels.count,
                 "clusteringAccuracy: \(assignments.count) assignments but \(labels.count) labels")
    precondition(clusters > 0 && classes > 0, "clusteringAccuracy: clusters and classes must be positive")
    guard !assignments.isEmpty else { return 0 }
    var table = [[Double]](repeating: [Double](repeating: 0, count: classes), count: clusters)
    for (a, l) in zip(assignments, labels) {
        precondition((0..<clusters).contains(a), "clusteringAccuracy: assignment \(a) outside 0..<\(clusters)")
        precondition((0..<classes).contains(l), "clusteringAccuracy: label \(l) outside 0..<\(classes)")
        table[a][l] += 1
    }
    let mapping = Hungarian.maximumMatching(table)
    var correct = 0.0
    for (cluster, label) in mapping.enumerated() where label >= 0 {
        correct += table[cluster][label]
    }
    return 100 * correct / Double(assignments.count)
}
