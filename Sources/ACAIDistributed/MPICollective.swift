import ACAIDevice
import CMPI
import Foundation

/// `Collective` over Open MPI's MPI_COMM_WORLD: the processes `mpirun -np N acai ...` starts.
///
/// Every collective is started non-blocking and polled against a deadline (`timeoutSeconds`), so a rank that
/// stopped answering ends the job with a message naming this rank and the collective, never a hang; a rank
/// that died is reported by mpirun itself, which ends the others. Errors are returned by MPI (not fatal) and
/// become `CollectiveError`s.
public final class MPICollective: Collective, @unchecked Sendable {
    public let rank: Int
    public let size: Int
    public let localRank: Int
    public let localSize: Int
    public let nodeName: String
    /// How long one collective may wait for the other ranks (evaluations on rank 0 included).
    public var timeoutSeconds: Double
    /// Polled while waiting: a non-zero value (a signal number) abandons the wait after `signalGraceSeconds`.
    public var interruption: @Sendable () -> Int32 = { 0 }
    private let lock = NSLock()
    private var seconds = 0.0
    static let signalGraceSeconds = 10.0

    /// Whether this process was started by mpirun (Open MPI, or any launcher speaking PMI/PMIx).
    public static var launchedByMPI: Bool {
        let environment = ProcessInfo.processInfo.environment
        return ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"].contains { environment[$0] != nil }
    }

    /// Joins the job (MPI_Init). Call once per process, from the main thread.
    public init(timeoutSeconds: Double = 600) throws {
        let rc = acai_mpi_init()
        guard rc == MPI_SUCCESS else { throw CollectiveError("MPI_Init failed: \(Self.describe(rc))") }
        rank = Int(acai_mpi_rank())
        size = Int(acai_mpi_size())
        var local: Int32 = 0, localCount: Int32 = 1
        let localRC = acai_mpi_local(&local, &localCount)
        guard localRC == MPI_SUCCESS else {
            throw CollectiveError("rank \(acai_mpi_rank()): finding the ranks of this node failed: \(Self.describe(localRC))")
        }
        localRank = Int(local)
        localSize = Int(localCount)
        var name = [CChar](repeating: 0, count: 256)
        acai_mpi_processor_name(&name, Int32(name.count))
        nodeName = Self.string(name)
        self.timeoutSeconds = timeoutSeconds
    }

    /// Leaves the job (MPI_Finalize); nothing may be called afterwards.
    public func finalize() {
        _ = acai_mpi_finalize()
    }

    public var collectiveSeconds: Double { lock.withLock { seconds } }

    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>, what: String) throws {
        try chunked(values.count) { start, count in
            try complete(what) { acai_mpi_iallreduce_sum_float(values.baseAddress! + start, count, &$0) }
        }
    }

    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>, what: String) throws {
        try chunked(values.count) { start, count in
            try complete(what) { acai_mpi_iallreduce_sum_double(values.baseAddress! + start, count, &$0) }
        }
    }

    public func allReduceMax(_ values: UnsafeMutableBufferPointer<Int64>, what: String) throws {
        try chunked(values.count) { start, count in
            try values.baseAddress!.withMemoryRebound(to: CLongLong.self, capacity: values.count) { base in
                try complete(what) { acai_mpi_iallreduce_max_int64(base + start, count, &$0) }
            }
        }
    }

    public func broadcast(_ bytes: inout [UInt8], root: Int, what: String) throws {
        var count: [Int64] = [Int64(rank == root ? bytes.count : 0)]
        try count.withUnsafeMutableBytes { raw in
            try complete("the size of \(what)") { acai_mpi_ibcast_bytes(raw.baseAddress, 8, Int32(root), &$0) }
        }
        if rank != root { bytes = [UInt8](repeating: 0, count: Int(count[0])) }
        try bytes.withUnsafeMutableBytes { raw in
            try chunked(raw.count) { start, n in
                try complete(what) { acai_mpi_ibcast_bytes(raw.baseAddress.map { $0 + start }, n, Int32(root), &$0) }
            }
        }
    }

    public func gather(_ bytes: [UInt8], root: Int, what: String) throws -> [[UInt8]]? {
        guard bytes.count < Int(Int32.max) else { throw CollectiveError("\(what) is too large to gather (\(bytes.count) bytes)") }
        var counts = [CLongLong](repeating: 0, count: size)
        var send = CLongLong(bytes.count)
        try complete("the sizes of \(what)") { acai_mpi_igather_int64(CLongLong(bytes.count), &counts, Int32(root), &$0, &send) }
        let sizes = counts.map { Int32($0) }
        var displacements = [Int32](repeating: 0, count: size)
        for i in 1..<max(size, 1) { displacements[i] = displacements[i - 1] + sizes[i - 1] }
        var all = [UInt8](repeating: 0, count: rank == root ? Int(sizes.reduce(0, +)) : 0)
        try bytes.withUnsafeBytes { send in
            try all.withUnsafeMutableBytes { receive in
                try complete(what) {
                    acai_mpi_igatherv_bytes(send.baseAddress, Int32(bytes.count), receive.baseAddress, sizes, displacements,
                                            Int32(root), &$0)
                }
            }
        }
        guard rank == root else { return nil }
        return (0..<size).map { Array(all[Int(displacements[$0])..<Int(displacements[$0] + sizes[$0])]) }
    }

    public func barrier(what: String) throws {
        try complete(what) { acai_mpi_ibarrier(&$0) }
    }

    public func abort(_ message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data("acai: rank \(rank) of \(size) on \(nodeName): \(message)\n".utf8))
        _ = acai_mpi_abort(code)
        exit(code)
    }

    // MARK: waiting with a deadline

    /// Starts a collective (`start` fills in its request) and polls it to completion. The first polls spin,
    /// later ones sleep a little longer each time (up to 0.2 ms, the most a completed collective is noticed
    /// late): a waiting rank must not take the core of a rank still computing when the job oversubscribes its
    /// cores.
    private func complete(_ what: String, _ start: (inout MPI_Request?) -> Int32) throws {
        let began = DispatchTime.now().uptimeNanoseconds
        defer {
            let spent = Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9
            lock.withLock { seconds += spent }
        }
        var request: MPI_Request?
        let rc = start(&request)
        guard rc == MPI_SUCCESS else { throw failure(what, rc) }
        var polls = 0
        var signalledAt: UInt64?
        while true {
            var done: Int32 = 0
            let testRC = acai_mpi_test(&request, &done)
            guard testRC == MPI_SUCCESS else { throw failure(what, testRC) }
            if done != 0 { return }
            polls += 1
            if polls < 64 { continue }
            if polls % 256 == 0 {
                let waited = Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9
                if waited > timeoutSeconds {
                    throw CollectiveError(
                        "\(what) did not complete within \(Int(timeoutSeconds)) s (--collective-timeout): another rank "
                            + "stopped answering; ending the job")
                }
                // A stop signal (SIGINT/SIGTERM from mpirun or the user) reaches every rank: keep waiting a few
                // seconds, so that the ranks agree to stop and rank 0 saves a checkpoint; a rank that died
                // (mpirun signals the others then) never arrives, and the wait ends.
                let signal = interruption()
                if signal != 0 {
                    if signalledAt == nil { signalledAt = DispatchTime.now().uptimeNanoseconds }
                    if Double(DispatchTime.now().uptimeNanoseconds - signalledAt!) / 1e9 > Self.signalGraceSeconds {
                        throw CollectiveError("stopped by signal \(signal) while waiting for \(what): the other ranks did not "
                                              + "arrive within \(Int(Self.signalGraceSeconds)) s (one has died, or mpirun is ending the job)")
                    }
                }
            }
            usleep(UInt32(min(200, polls / 4)))
        }
    }

    private func failure(_ what: String, _ code: Int32) -> CollectiveError {
        CollectiveError("\(what) failed: \(Self.describe(code))")
    }

    /// Splits a collective over more than Int32.max elements into calls MPI's int counts can take.
    private func chunked(_ count: Int, _ body: (Int, Int32) throws -> Void) throws {
        let limit = 1 << 30
        var start = 0
        repeat {
            let n = min(limit, count - start)
            try body(start, Int32(n))
            start += n
        } while start < count
    }

    /// A NUL-terminated C string from a buffer.
    static func string(_ characters: [CChar]) -> String {
        let end = characters.firstIndex(of: 0) ?? characters.count
        return String(decoding: characters[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func describe(_ code: Int32) -> String {
        var text = [CChar](repeating: 0, count: 512)
        acai_mpi_error_string(code, &text, Int32(text.count))
        return "\(string(text)) (MPI error \(code))"
    }
}
