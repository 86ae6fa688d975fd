@testable import ACAICPU
import Foundation
import Synchronization
import XCTest

/// The CPU device's worker threads (`Parallel`, `WorkerPool`): every item runs exactly once whatever the
/// count, with several callers at once, with a body that splits work itself, and after the workers have gone
/// to sleep; the workers do take items.
final class WorkerPoolTests: XCTestCase {
    /// Runs `forEach(items)` and returns how often each item ran.
    private static func counts(_ parallel: Parallel, _ items: Int, _ body: (Int) -> Void = { _ in }) -> [Int] {
        let lock = NSLock()
        var runs = Array(repeating: 0, count: items)
        parallel.forEach(items) { i in
            body(i)
            lock.withLock { runs[i] += 1 }
        }
        return runs
    }

    func testEveryItemRunsOnce() {
        for threads in [1, 2, 3] {
            for items in [0, 1, 2, 7, 33, 1000] {
                XCTAssertEqual(Self.counts(Parallel(threads: threads), items), Array(repeating: 1, count: items),
                               "\(items) items on \(threads) threads")
            }
        }
    }

    func testConcurrentCallersAndNestedCallsEachRunTheirItems() {
        let parallel = Parallel(threads: 2)
        let failures = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 4) { caller in
            for round in 0..<50 {
                let items = 5 + (caller * 7 + round) % 40
                // An item that itself splits work (run on its own thread while the pool is busy).
                let inner = Atomic<Int>(0)
                let outer = Self.counts(parallel, items) { i in
                    if i == 0 { parallel.forEach(9) { _ in inner.add(1, ordering: .relaxed) } }
                }
                if outer != Array(repeating: 1, count: items) || inner.load(ordering: .relaxed) != 9 {
                    failures.add(1, ordering: .relaxed)
                }
            }
        }
        XCTAssertEqual(failures.load(ordering: .relaxed), 0)
    }

    func testSleepingWorkersWakeAndTakeItems() {
        let parallel = Parallel(threads: 2)
        _ = Self.counts(parallel, 4)
        // Past the spin time the worker sleeps; the next job must wake it.
        Thread.sleep(forTimeInterval: Double(WorkerPool.spinNanoseconds) / 1e9 * 4)
        let lock = NSLock()
        var threads = Set<ObjectIdentifier>()
        let ran = Self.counts(parallel, 40) { _ in
            let thread = ObjectIdentifier(Thread.current)
            lock.withLock { _ = threads.insert(thread) }
            Thread.sleep(forTimeInterval: 0.001)
        }
        XCTAssertEqual(ran, Array(repeating: 1, count: 40))
        XCTAssertEqual(threads.count, 2, "the items ran on \(threads.count) thread(s)")
    }
}
