import ACAIDevice
import ACAITestSupport
import XCTest

/// One op-test case: host inputs, the initial contents of the outputs, and how to build the op(s) from the
/// device buffers. The same case runs on every device and against `Reference.evaluate`.
struct OpCase {
    /// An output buffer's contents before the op runs.
    enum Initial {
        /// `count` NaNs: the op must write every element, and must not read it first.
        case poison(Int)
        /// Given values: for ops that leave part of the output alone (copyAxisRange) or update it in place
        /// (gemm with beta ≠ 0, Adam).
        case values([Float])

        var floats: [Float] {
            switch self {
            case let .poison(count): return [Float](repeating: .nan, count: count)
            case let .values(values): return values
            }
        }
    }

    var label: String
    var inputs: [[Float]]
    var outputs: [Initial]
    /// One tolerance per output (or one for all).
    var tolerances: [Tolerance]
    /// Builds the ops from (input buffers, output buffers); they run in order.
    var make: (_ inputs: [DeviceBuffer], _ outputs: [DeviceBuffer]) -> [Op]
    /// The reference outputs, computed on first use and shared by every device (the inputs are the same).
    let expected = Memo()

    final class Memo {
        var value: [[Double]]?
    }

    init(_ label: String, inputs: [[Float]], outputs: [Initial], tolerance: Tolerance...,
         make: @escaping (_ inputs: [DeviceBuffer], _ outputs: [DeviceBuffer]) -> [Op]) {
        precondition(!tolerance.isEmpty && (tolerance.count == 1 || tolerance.count == outputs.count))
        self.label = label
        self.inputs = inputs
        self.outputs = outputs
        self.tolerances = tolerance
        self.make = make
    }

    /// A case with a single op.
    init(_ label: String, inputs: [[Float]], outputs: [Initial], tolerance: Tolerance...,
         op: @escaping (_ inputs: [DeviceBuffer], _ outputs: [DeviceBuffer]) -> Op) {
        precondition(!tolerance.isEmpty && (tolerance.count == 1 || tolerance.count == outputs.count))
        self.label = label
        self.inputs = inputs
        self.outputs = outputs
        self.tolerances = tolerance
        self.make = { [op($0, $1)] }
    }

    func tolerance(_ output: Int) -> Tolerance { tolerances.count == 1 ? tolerances[0] : tolerances[output] }
}

/// Uploads the case's inputs, poisons (or fills) its outputs with host writes, runs it on `device` (asserting
/// that the device's `launchCount` moved), reads every output back and compares it with the float64
/// reference. Inputs must come back unchanged. Errors are recorded as failures naming the case and device,
/// and the next case still runs.
func check(_ c: OpCase, on device: any Device, named deviceName: String? = nil, file: StaticString = #filePath,
           line: UInt = #line) {
    let where_ = "\(c.label) on \(deviceName ?? device.id)"
    do {
        let ins = try c.inputs.map { try device.upload($0) }
        let outs = try c.outputs.map { try device.upload($0.floats) }
        let ops = c.make(ins, outs)

        for op in ops { try op.validate() }
        let expected = c.expected.value ?? {
            var memory: Reference.Memory = [:]
            for (buffer, values) in zip(ins, c.inputs) { memory[ObjectIdentifier(buffer)] = values.map(Double.init) }
            for (buffer, initial) in zip(outs, c.outputs) {
                memory[ObjectIdentifier(buffer)] = initial.floats.map(Double.init)
            }
            for op in ops { Reference.evaluate(op, &memory) }
            let values = outs.map { memory[ObjectIdentifier($0)] ?? [] }
            c.expected.value = values
            return values
        }()

        let results = try assertLaunches(on: device, where_, file: file, line: line) {
            for op in ops { try device.run(op) }
            return try outs.map { try device.read($0) }
        }
        for (k, (actual, reference)) in zip(results, expected).enumerated() {
            assertClose(actual: actual, expected: reference, tolerance: c.tolerance(k),
                        context: "\(where_), output \(k) [\(c.tolerance(k))]", file: file, line: line)
        }
        for (k, (buffer, values)) in zip(ins, c.inputs).enumerated() {
            let after = try device.read(buffer)
            XCTAssertEqual(after, values, "\(where_): input \(k) was modified", file: file, line: line)
        }
    } catch {
        XCTFail("\(where_) threw: \(error)", file: file, line: line)
    }
}

/// Runs every case on the `alsoOn` devices (variants of a backend, each with a label), then on the CPU device
/// and the OpenCL device (see `TestDevices.forEach`).
func checkOnAllDevices(_ cases: [OpCase], alsoOn extra: [(label: String, device: any Device)] = [],
                       file: StaticString = #filePath, line: UInt = #line) throws {
    XCTAssertFalse(cases.isEmpty, "no cases", file: file, line: line)
    for (label, device) in extra {
        for c in cases { check(c, on: device, named: label, file: file, line: line) }
    }
    try TestDevices.forEach { device in
        for c in cases { check(c, on: device, file: file, line: line) }
    }
}
