import ACAIDevice
import Dispatch
import Foundation
import Synchronization

/// Splits work over the device's worker threads. Items are handed out dynamically (the CPUs here are
/// shared virtual cores, so a static split stalls on the slowest one); the result of an item never
/// depends on which worker ran it, so every op stays deterministic.
struct Parallel {
    let threads: Int

    /// Element counts at or below this run on the calling thread: waking workers costs more than the loop.
    static let serialLimit = 32768

    /// Runs `body(i)` for every i in 0..<items on up to `threads` threads (the caller's among them).
    func forEach(_ items: Int, _ body: (Int) -> Void) {
        if items <= 0 { return }
        if threads <= 1 || items == 1 {
            for i in 0..<items { body(i) }
            return
        }
        WorkerPool.shared(threads: threads).run(items, body)
    }

    /// Calls `body` on contiguous ranges covering 0..<count: one range when the count is small, else
    /// several per thread, each a multiple of `align` elements long (except the last).
    func chunks(_ count: Int, serialLimit: Int = Parallel.serialLimit, align: Int = 16,
                _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        if threads <= 1 || count <= serialLimit {
            body(0..<count)
            return
        }
        // Several pieces per thread for balance, but none much smaller than a quarter of the serial limit.
        let unit = max(1, serialLimit / 4)
        let pieces = max(1, min(threads * 4, (count + unit - 1) / unit))
        var size = (count + pieces - 1) / pieces
        size = (size + align - 1) / align * align
        let n = (count + size - 1) / size
        forEach(n) { i in body(i * size ..< min(count, (i + 1) * size)) }
    }
}

/// Persistent worker threads for `Parallel.forEach`, which spin for a moment after each job before they
/// sleep. Why not `DispatchQueue.concurrentPerform`: its parked workers took so long to wake on these
/// virtual cores that in most ops of ~1 ms the calling thread had taken every item before a second
/// thread started (convolutions ran at one thread's speed). A training step runs its ops back to back,
/// so a worker that waits spinning between them is there when the next one starts, as OpenMP's are.
///
/// A job: the caller publishes the body and item count, opens a new (odd) generation, takes items
/// itself, then closes the generation (even) and waits until no worker is inside the job. A worker
/// enters by counting itself active and re-checking the generation, so one that arrives late never touches
/// a body that has returned.
final class WorkerPool: @unchecked Sendable {
    /// How long a worker spins waiting for the next job before it sleeps.
    static let spinNanoseconds: UInt64 = 5_000_000

    private let generation = Atomic<Int>(0)
    private let nextItem = Atomic<Int>(0)
    private let active = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    /// One job at a time: a second caller (another device's thread, or a body that itself splits work)
    /// runs its items on its own thread instead.
    private let busy = Atomic<Bool>(false)
    private let wake = NSCondition()
    // Written by the caller before a generation opens and read by workers only inside it.
    private nonisolated(unsafe) var items = 0
    private nonisolated(unsafe) var body: ((Int) -> Void)?

    private static let poolsLock = NSLock()
    private nonisolated(unsafe) static var pools: [Int: WorkerPool] = [:]

    /// The process's pool for `threads` threads (threads - 1 workers beside the caller).
    static func shared(threads: Int) -> WorkerPool {
        poolsLock.withLock {
            if let pool = pools[threads] { return pool }
            let pool = WorkerPool(workers: threads - 1)
            pools[threads] = pool
            return pool
        }
    }

    private init(workers: Int) {
        for index in 0..<workers {
            let thread = Thread { [unowned self] in self.workerLoop() }
            thread.name = "acai-cpu-\(index + 1)"
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    func run(_ count: Int, _ work: (Int) -> Void) {
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            for i in 0..<count { work(i) }
            return
        }
        defer { busy.store(false, ordering: .releasing) }
        withoutActuallyEscaping(work) { work in
            items = count
            body = work
            nextItem.store(0, ordering: .sequentiallyConsistent)
            let open = generation.load(ordering: .relaxed) + 1
            generation.store(open, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                wake.lock()
                wake.broadcast()
                wake.unlock()
            }
            takeItems(work, count)
            generation.store(open + 1, ordering: .sequentiallyConsistent)
            while active.load(ordering: .sequentiallyConsistent) > 0 {}
            body = nil
        }
    }

    private func takeItems(_ work: (Int) -> Void, _ count: Int) {
        while true {
            let i = nextItem.wrappingAdd(1, ordering: .relaxed).oldValue
            if i >= count { return }
            work(i)
        }
    }

    private func workerLoop() {
        var seen = 0
        while true {
            let open = waitForJob(after: seen)
            seen = open
            active.add(1, ordering: .sequentiallyConsistent)
            if generation.load(ordering: .sequentiallyConsistent) == open, let work = body {
                takeItems(work, items)
            }
            active.subtract(1, ordering: .sequentiallyConsistent)
        }
    }

    /// Spins, then sleeps, until a generation after `seen` is open; returns it.
    private func waitForJob(after seen: Int) -> Int {
        func openJob() -> Int? {
            let g = generation.load(ordering: .sequentiallyConsistent)
            return g != seen && g & 1 == 1 ? g : nil
        }
        let deadline = DispatchTime.now().uptimeNanoseconds + Self.spinNanoseconds
        var spins = 0
        while true {
            if let g = openJob() { return g }
            spins += 1
            if spins & 1023 == 0 && DispatchTime.now().uptimeNanoseconds > deadline { break }
        }
        wake.lock()
        defer { wake.unlock() }
        sleepers.add(1, ordering: .sequentiallyConsistent)
        defer { sleepers.subtract(1, ordering: .sequentiallyConsistent) }
        while true {
            if let g = openJob() { return g }
            wake.wait()
        }
    }
}

/// Grow-only temporary memory kept between ops (padded images, packed filters, im2col tiles, partial
/// sums), so the hot loops never pay for page faults on fresh allocations. Safe to use from several
/// threads: each `withFloats` call gets a block of its own.
final class ScratchArena: @unchecked Sendable {
    private let lock = NSLock()
    private var blocks: [(pointer: UnsafeMutableRawPointer, floats: Int)] = []
    /// Idle blocks beyond this many bytes are freed instead of kept.
    private let keepBytes = 512 << 20

    /// Runs `body` with at least `count` floats of uninitialised, 64-byte aligned memory.
    func withFloats<R>(_ count: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) throws -> R {
        let block = try take(max(count, 16))
        defer { give(block) }
        return try body(block.pointer.assumingMemoryBound(to: Float.self))
    }

    /// Runs `body` with `count` zeroed floats.
    func withZeroedFloats<R>(_ count: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) throws -> R {
        try withFloats(count) { p in
            p.initialize(repeating: 0, count: count)
            return try body(p)
        }
    }

    private func take(_ floats: Int) throws -> (pointer: UnsafeMutableRawPointer, floats: Int) {
        let reused: (pointer: UnsafeMutableRawPointer, floats: Int)? = lock.withLock {
            // The smallest idle block that is large enough.
            var best: Int?
            for (i, b) in blocks.enumerated() where b.floats >= floats {
                if best == nil || b.floats < blocks[best!].floats { best = i }
            }
            return best.map { blocks.remove(at: $0) }
        }
        if let reused { return reused }
        guard let pointer = allocateHostMemory(bytes: floats * MemoryLayout<Float>.stride) else {
            let inUse = lock.withLock { blocks.reduce(0) { $0 + $1.floats * 4 } }
            throw DeviceError.outOfMemory(device: "cpu scratch", requested: floats * 4, inUse: inUse, limit: keepBytes)
        }
        return (pointer, floats)
    }

    private func give(_ block: (pointer: UnsafeMutableRawPointer, floats: Int)) {
        let drop: [UnsafeMutableRawPointer] = lock.withLock {
            blocks.append(block)
            var total = blocks.reduce(0) { $0 + $1.floats * 4 }
            var dropped: [UnsafeMutableRawPointer] = []
            // Over budget: free the largest idle blocks first.
            blocks.sort { $0.floats < $1.floats }
            while total > keepBytes, let last = blocks.popLast() {
                total -= last.floats * 4
                dropped.append(last.pointer)
            }
            return dropped
        }
        for p in drop { free(p) }
    }

    /// Frees every idle block.
    func clear() {
        let all = lock.withLock { () -> [UnsafeMutableRawPointer] in
            defer { blocks.removeAll() }
            return blocks.map(\.pointer)
        }
        for p in all { free(p) }
    }

    deinit { clear() }
}

/// Host memory for buffers and scratch: 64-byte aligned (a cache line, and a full AVX-512 vector).
func allocateHostMemory(bytes: Int) -> UnsafeMutableRawPointer? {
    var pointer: UnsafeMutableRawPointer?
    return posix_memalign(&pointer, 64, max(bytes, 64)) == 0 ? pointer : nil
}
