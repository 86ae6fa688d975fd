import ACAIDevice
import ACAITestSupport
import XCTest

/// The counter-based random op: every device must reproduce `RandomBits` (uniform and dropout bit for bit,
/// normal within float32 rounding of Box–Muller), agree with the other device, and continue one stream across
/// offsets. Tolerances: uniform and dropout exact (dropout's 1/keep within float32 rounding); normal against
/// the float64 reference atol 1e-5, rtol 1e-5; normal CPU against OpenCL within 1e-5.
final class RandomTests: XCTestCase {
    static let distributions: [RandomDistribution] = [.uniform, .normal, .dropout(keep: 0.5), .dropout(keep: 0.8)]

    static func tolerance(_ d: RandomDistribution) -> Tolerance {
        switch d {
        case .uniform: return .exact
        case .normal: return .fixed(atol: 1e-5, rtol: 1e-5)
        case .dropout: return .arithmetic
        }
    }

    func testRandomMatchesReference() throws {
        var rng = TestRandom.generator(self)
        let seeds = [rng.next(), 0, UInt64.max]
        var cases: [OpCase] = []
        for seed in seeds {
            for d in Self.distributions {
                // Offsets past 2^32 catch a counter truncated to 32 bits.
                for (count, offset) in [(1, UInt64(0)), (7, 5), (33, 1 << 33 | 3), (65, 1_000_003), (4099, 0)] {
                    cases.append(OpCase("random \(d) seed=\(seed) offset=\(offset) n=\(count)", inputs: [],
                                        outputs: [.poison(count)], tolerance: Self.tolerance(d)) { _, o in
                        .random(d, out: o[0], seed: seed, offset: offset)
                    })
                }
            }
        }
        try checkOnAllDevices(cases)

        // The reference restates RandomBits; they must agree (uniform exactly).
        let seed = seeds[0]
        let reference = Reference.random(.uniform, count: 100, seed: seed, offset: 7)
        let bits = (0..<100).map { Double(RandomBits.uniform(seed: seed, counter: 7 + UInt64($0))) }
        XCTAssertEqual(reference, bits, "Reference.random(.uniform) differs from RandomBits.uniform")
        let normals = (0..<100).map { RandomBits.normal(seed: seed, index: 7 + UInt64($0)) }
        assertClose(actual: normals, expected: Reference.random(.normal, count: 100, seed: seed, offset: 7),
                    tolerance: Self.tolerance(.normal), context: "RandomBits.normal against the reference")
        // Sanity of the reference itself: uniform in [0, 1), a dropout mask keeps about `keep`.
        let many = Reference.random(.uniform, count: 10_000, seed: seed, offset: 0)
        XCTAssertTrue(many.allSatisfy { $0 >= 0 && $0 < 1 })
        XCTAssertEqual(many.reduce(0, +) / 10_000, 0.5, accuracy: 0.02)
        let mask = Reference.random(.dropout(keep: 0.8), count: 10_000, seed: seed, offset: 0)
        XCTAssertEqual(Double(mask.filter { $0 != 0 }.count) / 10_000, 0.8, accuracy: 0.02)
    }

    func testDevicesAgreeBitForBit() throws {
        var rng = TestRandom.generator(self)
        let cpu = TestDevices.cpu
        let gpu = try TestDevices.openCL()
        for d in Self.distributions {
            for (count, offset) in [(1, UInt64(0)), (33, 77), (4099, 1 << 40)] {
                let seed = rng.next()
                func draw(_ device: any Device) throws -> [Float] {
                    let out = try device.upload([Float](repeating: .nan, count: count))
                    return try assertLaunches(on: device, "random \(d) on \(device.id)") {
                        try device.run(.random(d, out: out, seed: seed, offset: offset))
                        return try device.read(out)
                    }
                }
                let a = try draw(cpu), b = try draw(gpu)
                let context = "random \(d) seed=\(seed) offset=\(offset) n=\(count): \(cpu.id) against \(gpu.id)"
                switch d {
                case .uniform, .dropout:
                    let differ = zip(a, b).enumerated().filter { $0.element.0.bitPattern != $0.element.1.bitPattern }
                    XCTAssertTrue(differ.isEmpty, "\(context): \(differ.count) values differ, first "
                                  + "\(differ.prefix(5).map { "[\($0.offset)] \($0.element.0) vs \($0.element.1)" })"
                                  + " (seed = \(TestRandom.currentSeed ?? 0))")
                case .normal:
                    assertClose(actual: b, expected: a.map(Double.init), atol: 1e-5, rtol: 0, context: context)
                }
            }
        }
    }

    func testOffsetsContinueTheStream() throws {
        var rng = TestRandom.generator(self)
        let seed = rng.next()
        let base = UInt64.random(in: 0...(1 << 40), using: &rng)
        try TestDevices.forEach { device in
            for d in Self.distributions {
                func draw(count: Int, offset: UInt64) throws -> [Float] {
                    let out = try device.upload([Float](repeating: .nan, count: count))
                    try device.run(.random(d, out: out, seed: seed, offset: offset))
                    return try device.read(out)
                }
                let long = try draw(count: 100, offset: base)
                for k in [1, 17, 63] {
                    let short = try draw(count: 20, offset: base + UInt64(k))
                    let context = "\(device.id) random \(d) seed=\(seed): offset \(base)+\(k) against element \(k) "
                        + "of the draw at \(base)"
                    // Same device, same (seed, counter): identical up to float rounding of the normal's math.
                    assertClose(actual: short, expected: long[k..<(k + 20)].map(Double.init),
                                tolerance: d == .normal ? .arithmetic : .exact, context: context)
                }
            }
        }
    }
}
