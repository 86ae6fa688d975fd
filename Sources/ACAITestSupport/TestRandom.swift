import Foundation
import XCTest

/// SplitMix64: a small, fast, statistically sound generator whose whole state is one seed, so a failing
/// test can be replayed exactly from the seed it printed.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Per-test seeds and random inputs.
///
/// Every test draws a fresh seed from the clock, unless the environment variable `ACAI_TEST_SEED` is set, in
/// which case every test uses that seed. The seed is printed (`seed = N (test name)`) and remembered, so that
/// `assertClose` can quote it in a failure: rerun with `ACAI_TEST_SEED=N swift test --filter <test>` to
/// reproduce.
public enum TestRandom {
    private static let state = SeedState()

    /// A fresh seed for `test` (logged with the test's name).
    public static func seed(_ test: XCTestCase) -> UInt64 { seed(name: test.name) }

    /// A fresh seed for a test called `name` (logged).
    public static func seed(name: String) -> UInt64 {
        let seed: UInt64
        if let text = ProcessInfo.processInfo.environment["ACAI_TEST_SEED"], !text.isEmpty {
            guard let value = UInt64(text) else {
                preconditionFailure("ACAI_TEST_SEED must be an unsigned 64-bit integer, got '\(text)'")
            }
            seed = value
        } else {
            // Clock plus a process-wide counter: distinct even for tests started in the same nanosecond.
            var mixer = SeededGenerator(seed: UInt64(Date().timeIntervalSince1970 * 1e9) ^ state.bump())
            seed = mixer.next()
        }
        state.set(seed)
        print("seed = \(seed) (\(name))")
        return seed
    }

    /// A generator seeded with a fresh, logged seed for `test`.
    public static func generator(_ test: XCTestCase) -> SeededGenerator { SeededGenerator(seed: seed(test)) }

    /// The seed most recently handed out (quoted in failure messages), nil before the first.
    public static var currentSeed: UInt64? { state.get() }

    /// `count` values uniform in `range`, avoiding `(-exclude, exclude)` (so `exclude > 0` keeps them away from
    /// zero). Never all zeros.
    public static func uniform(_ count: Int, in range: ClosedRange<Float> = -2...2, excluding exclude: Float = 0,
                               using rng: inout SeededGenerator) -> [Float] {
        precondition(range.upperBound > range.lowerBound)
        precondition(exclude == 0 || range.upperBound > exclude || range.lowerBound < -exclude,
                     "the excluded band covers the whole range")
        var out: [Float] = []
        out.reserveCapacity(count)
        while out.count < count {
            let v = Float.random(in: range, using: &rng)
            if exclude > 0, abs(v) < exclude { continue }
            out.append(v)
        }
        if count > 0, out.allSatisfy({ $0 == 0 }) { out[0] = range.upperBound }
        return out
    }

    /// `count` values in [low, high] with high > low > 0: for log, sqrt, reciprocal and divisors.
    public static func positive(_ count: Int, in range: ClosedRange<Float> = 0.25...2,
                                using rng: inout SeededGenerator) -> [Float] {
        precondition(range.lowerBound > 0)
        return uniform(count, in: range, using: &rng)
    }

    /// `count` integral values in `0..<bound`, as floats (indices for gather and one-hot).
    public static func indices(_ count: Int, below bound: Int, using rng: inout SeededGenerator) -> [Float] {
        (0..<count).map { _ in Float(Int.random(in: 0..<bound, using: &rng)) }
    }

    /// `count` small integers in `-spread...spread` as floats, never all zero: inputs with many exact ties.
    public static func integers(_ count: Int, spread: Int = 3, using rng: inout SeededGenerator) -> [Float] {
        var out = (0..<count).map { _ in Float(Int.random(in: -spread...spread, using: &rng)) }
        if count > 0, out.allSatisfy({ $0 == 0 }) { out[0] = 1 }
        return out
    }
}

/// The process-wide last seed, behind a lock (Swift 6: no unprotected global state).
private final class SeedState: @unchecked Sendable {
    private let lock = NSLock()
    private var seed: UInt64?
    private var counter: UInt64 = 0

    func set(_ value: UInt64) { lock.withLock { seed = value } }
    func get() -> UInt64? { lock.withLock { seed } }
    func bump() -> UInt64 {
        lock.withLock {
            counter &+= 0x2545_F491_4F6C_DD1D
            return counter
        }
    }
}
