import Foundation
import PackagePlugin

/// Embeds the package's `Kernels/*.cl` into the target as `EmbeddedKernels.sources`.
@main
struct EmbedKernelsPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let kernelDir = context.package.directoryURL.appending(path: "Kernels")
        let kernels = try FileManager.default.contentsOfDirectory(at: kernelDir, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "cl" || $0.pathExtension == "h" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedKernels.swift")
        return [.buildCommand(
            displayName: "Embedding \(kernels.count) OpenCL kernel files",
            executable: try context.tool(named: "embed-kernels").url,
            arguments: [output.path] + kernels.map(\.path),
            inputFiles: kernels,
            outputFiles: [output])]
    }
}
