import ACAIImaging
import Foundation

/// Checks that every file of a run folder is whole and parses (`acai check-run`, and the kill -9 chaos
/// script after each kill): the checkpoint (header, size, hash, finite values), options.json, summary.json,
/// metrics.jsonl (every line a record) and metrics.csv (every row as wide as its header), and the PNGs.
/// Files a run has not written yet are fine; a file that is there must be whole. Returns what was checked.
public enum RunFolderCheck {
    public static func verify(_ folder: String) throws -> [String] {
        let fm = FileManager.default
        var checked: [String] = []
        func path(_ name: String) -> String { folder + "/" + name }
        func exists(_ name: String) -> Bool { fm.fileExists(atPath: path(name)) }
        guard exists("options.json") else {
            throw TrainingError.badCheckpoint("\(folder) is not a run folder: \(path("options.json")) is missing")
        }
        _ = try TrainOptions.load(runFolder: folder)
        checked.append("options.json")
        if exists("checkpoint.bin") {
            let (_, values) = try Checkpoint.read(path("checkpoint.bin"))
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw TrainingError.badCheckpoint("\(path("checkpoint.bin")): value \(bad) is \(values[bad])")
            }
            checked.append("checkpoint.bin")
        }
        if exists("summary.json") {
            guard let data = fm.contents(atPath: path("summary.json")) else {
                throw TrainingError.io("cannot read \(path("summary.json"))")
            }
            do { _ = try JSONDecoder().decode(RunSummary.self, from: data) } catch {
                throw TrainingError.badCheckpoint("\(path("summary.json")) is not a run summary: \(error)")
            }
            checked.append("summary.json")
        }
        if exists("metrics.jsonl") {
            _ = try Trainer.readRecords(path("metrics.jsonl"))
            checked.append("metrics.jsonl")
        }
        if exists("metrics.csv") {
            guard let text = try? String(contentsOfFile: path("metrics.csv"), encoding: .utf8), text.hasSuffix("\n") else {
                throw TrainingError.badCheckpoint("\(path("metrics.csv")) is unreadable or does not end with a newline")
            }
            let rows = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
            let width = rows.first?.split(separator: ",", omittingEmptySubsequences: false).count ?? 0
            for (i, row) in rows.enumerated() where row.split(separator: ",", omittingEmptySubsequences: false).count != width {
                throw TrainingError.badCheckpoint("\(path("metrics.csv")) line \(i + 1) has not the \(width) columns of its header")
            }
            checked.append("metrics.csv")
        }
        for picture in ["interpolation.png", "slerp.png", "reconstruction.png", "samples.png", "curves.png"] where exists(picture) {
            _ = try PNG.read(path(picture), channels: 3)
            checked.append(picture)
        }
        return checked
    }
}
