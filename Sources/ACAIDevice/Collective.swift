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

/// Replicas of a model inside one process, one per thread (`ThreadCollective.members(n)`): the data-parallel step of
/// mpirun with threads for processes, for a CPU whose cores one single-threaded replica each use better than one
/// replica's ops split over all of them. Every collective is a meeting of all members: each sums its own slice of
/// the elements over the members in rank order (so results do not depend on thread timing) and writes it into
/// every member's values. A member that fails (`fail`) releases the others with an error instead of leaving them
/// waiting.
public final class ThreadCollective: @unchecked Sendable {
    public let size: Int
    private let condition = NSCondition()
    private var arrived = 0
    private var generation = 0
    private var failure: String?
    private var slots: [UnsafeMutableRawPointer?]
    private var counts: [Int]

    public init(size: Int) {
        self.size = max(1, size)
        slots = [UnsafeMutableRawPointer?](repeating: nil, count: self.size)
        counts = [Int](repeating: 0, count: self.size)
    }

    /// A new group of `size` replicas: one `Collective` per replica, rank 0 first (they keep the group).
    public static func members(_ size: Int) -> [Member] {
        let group = ThreadCollective(size: size)
        return (0..<group.size).map { Member(group: group, rank: $0) }
    }

    /// Ends every member's current and later collectives with `message` (a replica's step failed).
    public func fail(_ message: String) {
        condition.lock()
        if failure == nil { failure = message }
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until every member has arrived (a generation barrier).
    private func barrier(_ what: String) throws {
        condition.lock()
        defer { condition.unlock() }
        if let failure { throw CollectiveError("\(what): another replica failed: \(failure)") }
        let mine = generation
        arrived += 1
        if arrived == size {
            arrived = 0
            generation += 1
            condition.broadcast()
            return
        }
        while generation == mine, failure == nil { condition.wait() }
        if generation == mine, let failure { throw CollectiveError("\(what): another replica failed: \(failure)") }
    }

    /// Every member's `values` replaced by `combine` over the members, element by element, in rank order.
    fileprivate func reduce<T>(_ values: UnsafeMutableBufferPointer<T>, rank: Int, what: String,
                               _ combine: (T, T) -> T) throws {
        condition.lock()
        slots[rank] = UnsafeMutableRawPointer(values.baseAddress)
        counts[rank] = values.count
        condition.unlock()
        try barrier(what)
        guard counts.allSatisfy({ $0 == values.count }) else {
            fail("\(what): the replicas hold different sizes (\(counts))")
            throw CollectiveError("\(what): the replicas hold different sizes (\(counts))")
        }
        let per = (values.count + size - 1) / size
        let range = min(values.count, rank * per)..<min(values.count, (rank + 1) * per)
        let members = slots.map { $0!.assumingMemoryBound(to: T.self) }
        for i in range {
            var total = members[0][i]
            for m in 1..<size { total = combine(total, members[m][i]) }
            for m in 0..<size { members[m][i] = total }
        }
        try barrier(what)
    }

    /// Rank `root`'s bytes to every member.
    fileprivate func broadcast(_ bytes: inout [UInt8], rank: Int, root: Int, what: String) throws {
        try bytes.withUnsafeMutableBytes { raw in
            condition.lock()
            slots[rank] = raw.baseAddress
            counts[rank] = raw.count
            condition.unlock()
        }
        try barrier(what)
        let count = counts[root]
        if rank != root, let source = slots[root] {
            bytes = [UInt8](UnsafeRawBufferPointer(start: source, count: count))
        }
        try barrier(what)
    }

    public final class Member: Collective, @unchecked Sendable {
        public let group: ThreadCollective
        public let rank: Int
        private let lock = NSLock()
        private var seconds = 0.0

        init(group: ThreadCollective, rank: Int) {
            self.group = group
            self.rank = rank
        }

        public var size: Int { group.size }
        public var localRank: Int { rank }
        public var localSize: Int { group.size }
        public var nodeName: String { ProcessInfo.processInfo.hostName }
        public var collectiveSeconds: Double { lock.withLock { seconds } }

        private func timed<R>(_ body: () throws -> R) rethrows -> R {
            let start = DispatchTime.now().uptimeNanoseconds
            defer {
                let spent = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                lock.withLock { seconds += spent }
            }
            return try body()
        }

        public func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>, what: String) throws {
            try timed { try group.reduce(values, rank: rank, what: what, +) }
        }

        public func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>, what: String) throws {
            try timed { try group.reduce(values, rank: rank, what: what, +) }
        }

        public func allReduceMax(_ values: UnsafeMutableBufferPointer<Int64>, what: String) throws {
            try timed { try group.reduce(values, rank: rank, what: what) { Swift.max($0, $1) } }
        }

        public func broadcast(_ bytes: inout [UInt8], root: Int, what: String) throws {
            try timed { try group.broadcast(&bytes, rank: rank, root: root, what: what) }
        }

        public func gather(_ bytes: [UInt8], root: Int, what: String) throws -> [[UInt8]]? {
            var all: [[UInt8]] = []
            for r in 0..<size {
                var mine = r == rank ? bytes : []
                try broadcast(&mine, root: r, what: what)
                all.append(mine)
            }
            return rank == root ? all : nil
        }

        public func barrier(what: String) throws { try timed { try group.barrier(what) } }

        public func abort(_ message: String, code: Int32) -> Never {
            FileHandle.standardError.write(Data((message + "\n").utf8))
            exit(code)
        }
    }
}
