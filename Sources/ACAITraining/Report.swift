import ACAIModels
import Foundation

/// The clustering result of a run (`cluster.json`, written by `acai cluster`).
public struct ClusterResult: Codable, Sendable {
    public var accuracy: Double
    public var inertia: Double
    public var initializations: Int
    public var maxIterations: Int
    public var trainImages: Int
    public var testImages: Int
    public var whitened: Bool
    public var seconds: Double

    public init(accuracy: Double, inertia: Double, initializations: Int, maxIterations: Int, trainImages: Int,
                testImages: Int, whitened: Bool, seconds: Double) {
        self.accuracy = accuracy; self.inertia = inertia; self.initializations = initializations
        self.maxIterations = maxIterations; self.trainImages = trainImages; self.testImages = testImages
        self.whitened = whitened; self.seconds = seconds
    }
}

/// Tables 2 and 3 of the paper from run folders: rows (dataset, latent dimensions), columns the seven
/// models, cells mean ± std (population std, as the reference's notebook) over the runs present.
public struct Report {
    public struct Run {
        public var folder: String
        public var summary: RunSummary
        public var cluster: ClusterResult?
    }

    public var runs: [Run]

    /// Reads every folder that holds a summary.json; folders without one are listed in `skipped`.
    public static func load(_ folders: [String]) throws -> (report: Report, skipped: [String]) {
        var runs: [Run] = [], skipped: [String] = []
        for folder in folders {
            guard let data = FileManager.default.contents(atPath: folder + "/summary.json") else {
                skipped.append(folder)
                continue
            }
            let summary = try RunSummary.decode(data, path: folder + "/summary.json")
            var cluster: ClusterResult?
            if let c = FileManager.default.contents(atPath: folder + "/cluster.json") {
                do { cluster = try JSONDecoder().decode(ClusterResult.self, from: c) } catch {
                    throw TrainingError.badCheckpoint("\(folder)/cluster.json is not a clustering result: \(error)")
                }
            }
            runs.append(Run(folder: folder, summary: summary, cluster: cluster))
        }
        return (Report(runs: runs), skipped)
    }

    static let columns: [ModelKind] = [.ae, .dropout, .denoising, .vae, .aae, .vqvae, .acai]

    /// Rows of (dataset, latent dims) with, per model, the values `value` picks from each run.
    func table(_ value: (Run) -> Double?) -> [(dataset: String, latent: Int, cells: [[Double]])] {
        var keys: [String: (String, Int)] = [:]
        for r in runs { keys["\(r.summary.dataset)/\(r.summary.config.net.latentCount)"] = (r.summary.dataset, r.summary.config.net.latentCount) }
        return keys.values.sorted { ($0.0, $0.1) < ($1.0, $1.1) }.map { dataset, latent in
            let cells = Self.columns.map { kind in
                runs.filter { $0.summary.dataset == dataset && $0.summary.config.net.latentCount == latent && $0.summary.model == kind.rawValue }
                    .compactMap(value)
            }
            return (dataset, latent, cells)
        }
    }

    static func cell(_ v: [Double]) -> String {
        guard !v.isEmpty else { return "-" }
        let mean = v.reduce(0, +) / Double(v.count)
        let std = (v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(v.count)).squareRoot()
        return String(format: "%.2f±%.2f", mean, std) + (v.count > 1 ? " (\(v.count))" : "")
    }

    func markdown(title: String, _ value: (Run) -> Double?) -> String {
        var out = "### \(title)\n\n| dataset | latent dims | " + Self.columns.map(\.paperName).joined(separator: " | ") + " |\n"
        out += "|---|---:|" + String(repeating: "---:|", count: Self.columns.count) + "\n"
        for row in table(value) {
            out += "| \(row.dataset) | \(row.latent) | " + row.cells.map(Self.cell).joined(separator: " | ") + " |\n"
        }
        return out
    }

    func csv(table name: String, _ value: (Run) -> Double?) -> String {
        var out = ""
        for row in table(value) {
            for (kind, values) in zip(Self.columns, row.cells) where !values.isEmpty {
                let mean = values.reduce(0, +) / Double(values.count)
                let std = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)).squareRoot()
                out += "\(name),\(row.dataset),\(row.latent),\(kind.rawValue),\(mean),\(std),\(values.count)\n"
            }
        }
        return out
    }

    /// Table 2 (probe accuracy: median of the last 20 evaluations per run) and Table 3 (K-means accuracy).
    public func markdown() -> String {
        markdown(title: "Table 2: single-layer classifier accuracy on the latent (%), median of the last 20 evaluations per run") {
            $0.summary.medianLast20.probeAccuracy
        } + "\n" + markdown(title: "Table 3: K-means clustering accuracy on the latent (%)") { $0.cluster?.accuracy }
    }

    public func csv() -> String {
        "table,dataset,latent_dims,model,mean,std,runs\n"
            + csv(table: "probe_accuracy") { $0.summary.medianLast20.probeAccuracy }
            + csv(table: "cluster_accuracy") { $0.cluster?.accuracy }
    }
}
