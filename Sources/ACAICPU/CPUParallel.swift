import ACAIDevice
import Dispatch
import Foundation

/// Splits work over the device's worker threads. Items are handed out dynamically (the CPUs here are
/// shared virtual cores, so a static split stalls on the slowest one); the result of an item never
/// depends on which worker ran it, so every op stays deterministic.
struct Parallel {
    let threads: Int

    /// Element counts at or below this run on the calling thread: waking workers costs more than the loop.
    static let serialLimit = 32768

    /// Runs `body(i)` for every i in 0..<items on up to `threads` workers.
    func forEach(_ items: Int, _ body: (Int) -> Void) {
        if items <= 0 { return }
        if threads <= 1 || items == 1 {
            for i in 0..<items { body(i) }
            return
        }
        let counter = WorkCounter()
        // concurrentPerform wants a @Sendable closure; the bodies here capture raw pointers into buffers
        // whose items write disjoint ranges, which is safe but not expressible to the checker.
        withoutActuallyEscaping(body) { body in
            let work = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: min(threads, items)) { _ in
                while true {
                    let i = counter.next()
                    if i >= items { break }
                    work.value(i)
                }
            }
        }
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

private struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// The shared "next item" counter of `Parallel.forEach`.
private final class WorkCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        let v = value
        value += 1
        return v
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
        var pointer: UnsafeMutableRawPointer?
        guard posix_memalign(&pointer, 64, floats * MemoryLayout<Float>.stride) == 0, let pointer else {
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
