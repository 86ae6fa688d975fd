import Foundation

/// The read-only `shared/` folder beside the checkout (golden values, datasets). Found from the package
/// root (this file's path), or from the environment variable `ACAI_SHARED`.
public enum SharedFolder {
    public struct Missing: Error, CustomStringConvertible {
        public let path: String
        public init(path: String) { self.path = path }
        public var description: String {
            "the shared folder \(path) is missing: it must sit beside the checkout (../shared), or set ACAI_SHARED to its path"
        }
    }

    public static var root: String {
        if let env = ProcessInfo.processInfo.environment["ACAI_SHARED"], !env.isEmpty { return env }
        // Sources/ACAITestSupport/SharedFolder.swift → package root → ../shared
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared").path
    }

    /// `root/relative`, or a `Missing` error naming it.
    public static func path(_ relative: String) throws -> String {
        let p = root + "/" + relative
        guard FileManager.default.fileExists(atPath: p) else { throw Missing(path: p) }
        return p
    }

    /// The package root (for locating built products and kernels in tests).
    public static var packageRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }
}
