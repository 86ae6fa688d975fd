import Foundation
import XCTest

/// How close a float32 device result must be to its float64 reference: |actual − expected| ≤ atol + rtol·|expected|.
///
/// The rules (the op tests' doc comment quotes them):
/// - `exact`: data movement (copies, gathers, one-hot, index results, uniform random bits): bit-for-bit.
/// - `arithmetic`: one or a few correctly rounded float32 operations per element: atol 1e-6, rtol 1e-5
///   (≈ 170 float32 ulps; any correct implementation is far inside it).
/// - `transcendental`: exp, log, sigmoid and friends (OpenCL allows a few ulps): atol 1e-6, rtol 5e-5.
/// - `compound`: a short chain of transcendental ops per element (cross-entropies, Box–Muller): atol 1e-5,
///   rtol 1e-4.
/// - `sum(k)`: products and reductions over k terms. Float32 rounding of a k-term sum grows like √k times the
///   magnitude of the sum, so atol = 1e-6·√k·rms(expected) (and at least 1e-6), rtol 1e-4.
public struct Tolerance: Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        case fixed(atol: Double, rtol: Double)
        case sum(terms: Int)
    }

    public var kind: Kind

    public static let exact = Tolerance(kind: .fixed(atol: 0, rtol: 0))
    public static let arithmetic = Tolerance(kind: .fixed(atol: 1e-6, rtol: 1e-5))
    public static let transcendental = Tolerance(kind: .fixed(atol: 1e-6, rtol: 5e-5))
    public static let compound = Tolerance(kind: .fixed(atol: 1e-5, rtol: 1e-4))
    public static func sum(_ terms: Int) -> Tolerance { Tolerance(kind: .sum(terms: max(terms, 1))) }
    public static func fixed(atol: Double, rtol: Double) -> Tolerance { Tolerance(kind: .fixed(atol: atol, rtol: rtol)) }

    /// The absolute and relative tolerance for a particular expected output.
    public func resolve(for expected: [Double]) -> (atol: Double, rtol: Double) {
        switch kind {
        case let .fixed(atol, rtol):
            return (atol, rtol)
        case let .sum(terms):
            let finite = expected.filter(\.isFinite)
            let rms = finite.isEmpty ? 0 : (finite.reduce(0) { $0 + $1 * $1 } / Double(finite.count)).squareRoot()
            return (max(1e-6, 1e-6 * Double(terms).squareRoot() * rms), 1e-4)
        }
    }

    public var description: String {
        switch kind {
        case let .fixed(atol, rtol): return "atol \(atol), rtol \(rtol)"
        case let .sum(terms): return "atol 1e-6·√\(terms)·rms(expected), rtol 1e-4"
        }
    }
}

/// Asserts that a float32 result matches its float64 reference element by element:
/// |actual − expected| ≤ atol + rtol·|expected|. A NaN or infinity in `actual` always fails unless `expected` has
/// the same infinity (so outputs poisoned with NaN that were never written fail). Reports the count of
/// mismatches, the first few with index and values, the worst error, and the test seed.
public func assertClose(actual: [Float], expected: [Double], atol: Double, rtol: Double, context: String,
                        file: StaticString = #filePath, line: UInt = #line) {
    guard actual.count == expected.count else {
        XCTFail("\(context): \(actual.count) values, expected \(expected.count)\(seedNote())", file: file, line: line)
        return
    }
    var mismatches: [String] = []
    var count = 0
    var worst = 0.0
    var worstIndex = -1
    for i in 0..<actual.count {
        let a = Double(actual[i]), e = expected[i]
        let ok: Bool
        if !a.isFinite || !e.isFinite {
            ok = a == e  // NaN never equals anything; matching infinities pass
        } else {
            let diff = abs(a - e)
            ok = diff <= atol + rtol * abs(e)
            if diff > worst { worst = diff; worstIndex = i }
        }
        if !ok {
            count += 1
            if mismatches.count < 6 {
                mismatches.append("[\(i)] got \(actual[i]) expected \(e) (diff \(abs(a - e)))")
            }
        }
    }
    if count > 0 {
        XCTFail("\(context): \(count) of \(actual.count) values outside atol \(atol) + rtol \(rtol)·|expected|; "
                + "first: \(mismatches.joined(separator: ", "))"
                + (worstIndex >= 0 ? "; largest finite error \(worst) at [\(worstIndex)]" : "") + seedNote(),
                file: file, line: line)
    }
}

/// `assertClose` with a `Tolerance` rule.
public func assertClose(actual: [Float], expected: [Double], tolerance: Tolerance, context: String,
                        file: StaticString = #filePath, line: UInt = #line) {
    let (atol, rtol) = tolerance.resolve(for: expected)
    assertClose(actual: actual, expected: expected, atol: atol, rtol: rtol, context: context, file: file, line: line)
}

private func seedNote() -> String {
    TestRandom.currentSeed.map { " (seed = \($0); rerun with ACAI_TEST_SEED=\($0))" } ?? ""
}
