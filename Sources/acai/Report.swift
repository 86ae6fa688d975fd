import ACAITraining
import ArgumentParser
import Foundation

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Table-2 and Table-3 style markdown and CSV (rows dataset x latent size, columns the seven models) from run folders.")

    @Argument(help: "Run folders (each with summary.json, and cluster.json after `acai cluster`).") var runs: [String]
    @Option(help: "Also write report.md and report.csv into this folder.") var out: String?

    func run() throws {
        let (report, skipped) = try Report.load(runs)
        for folder in skipped {
            FileHandle.standardError.write(Data("skipping \(folder): no summary.json (not a finished run)\n".utf8))
        }
        guard !report.runs.isEmpty else { throw ValidationError("none of the \(runs.count) folders holds a finished run (summary.json)") }
        let markdown = report.markdown()
        print(markdown)
        if let out {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try writeAtomically(Data(markdown.utf8), to: out + "/report.md")
            try writeAtomically(Data(report.csv().utf8), to: out + "/report.csv")
            print("written: \(out)/report.md, \(out)/report.csv")
        }
    }
}
