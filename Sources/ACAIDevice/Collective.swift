import Foundation

/// The processes of a data-parallel run and the collectives they call together: every process calls the same
/// collectives in the same order, each returns once all have contributed. The training code sees only this
/// protocol; `MPICollective` (ACAIDistributed) implements it over Open MPI, and `SingleProcess` is the run of
/// one process, where every collective is the identity.
///
/// Errors: a collective that does not complete within the implementation's timeout, or that fails, throws a
/// `CollectiveError` naming the collective; the caller ends the job with `abort`, whose message names the rank.
public protocol Collective: AnyObject, Sendable {
    /// This process's rank, 0..<size. Rank 0 alone writes files.
    var rank: Int { get }
    var size: Int { get }
    /// This process's rank among those on its node, and their number (to pick a GPU, to share the cores).
    var localRank: Int { get }
    var localSize: Int { get }
    /// The node's name, for `acai devices`.
    var nodeName: String { get }

    /// Every process's `values` replaced by their element-wise sum over the processes.
    func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>, what: String) throws
    func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>, what: String) throws
    /// Every process's `values` replaced by their element-wise maximum (agreeing on flags).
    func allReduceMax(_ values: UnsafeMutableBufferPointer<Int64>, what: String) throws
    /// `root`'s bytes, on every process (the others' `bytes` are replaced).
    func broadcast(_ bytes: inout [UInt8], root: Int, what: String) throws
    /// Every process's bytes, in rank order, on `root` (nil on the others).
    func gather(_ bytes: [UInt8], root: Int, what: String) throws -> [[UInt8]]?
    /// Returns once every process has called it.
    func barrier(what: String) throws

    /// Seconds this process has spent inside collectives (waiting included), for progress lines.
    var collectiveSeconds: Double { get }
    /// Ends every process of the job after printing `message` (MPI_Abort); for a single process, exits.
    func abort(_ message: String, code: Int32) -> Never
}

extension Collective {
    public func allReduceSum(_ values: inout [Float], what: String) throws {
        try values.withUnsafeMutableBufferPointer { try allReduceSum($0, what: what) }
    }

    public func allReduceSum(_ values: inout [Double], what: String) throws {
        try values.withUnsafeMutableBufferPointer { try allReduceSum($0, what: what) }
    }

    /// The element-wise maximum of `values` over the processes.
    public func allReduceMax(_ values: [Int64], what: String) throws -> [Int64] {
        var values = values
        try values.withUnsafeMutableBufferPointer { try allReduceMax($0, what: what) }
        return values
    }

    public var isDistributed: Bool { size > 1 }
}

/// A collective failed or did not complete in time.
public struct CollectiveError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The one process of a run without MPI: every collective returns its input.
public final class SingleProcess: Collective {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public var localRank: Int { 0 }
    public var localSize: Int { 1 }
    public var nodeName: String { ProcessInfo.processInfo.hostName }
    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>, what: String) throws {}
    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>, what: String) throws {}
    public func allReduceMax(_ values: UnsafeMutableBufferPointer<Int64>, what: String) throws {}
    public func broadcast(_ bytes: inout [UInt8], root: Int, what: String) throws {}
    public func gather(_ bytes: [UInt8], root: Int, what: String) throws -> [[UInt8]]? { [bytes] }
    public func barrier(what: String) throws {}
    public var collectiveSeconds: Double { 0 }
    public func abort(_ message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data((message + "\n").utf8))
        exit(code)
    }
}
