import ACAICPU
import ACAIDevice
import ACAIOpenCL
import ACAITestSupport
import Foundation
import XCTest

/// The parts of the device contract around the ops: argument validation, the memory cap and its error, the
/// pool's counters, and (OpenCL) the error a broken kernel file gives.
final class DeviceContractTests: XCTestCase {
    // MARK: Validation

    /// The Swift case name of an op (`gemm`, `conv2dBackwardInput`, ...).
    static func caseName(_ op: Op) -> String {
        Mirror(reflecting: op).children.first?.label ?? String(describing: op)
    }

    func testValidateAcceptsWellFormedOps() throws {
        var rng = TestRandom.generator(self)
        for (label, op) in try OpSamples.valid(on: TestDevices.cpu, using: &rng) {
            XCTAssertNoThrow(try op.validate(), "\(label): a well-formed op was rejected")
        }
    }

    func testValidateRejectsWrongSizesNamingTheOp() throws {
        var rng = TestRandom.generator(self)
        let invalid = try OpSamples.invalid(on: TestDevices.cpu, using: &rng)
        XCTAssertGreaterThan(invalid.count, 20)
        for (label, op) in invalid {
            do {
                try op.validate()
                XCTFail("\(label): validate() accepted it")
            } catch let error as DeviceError {
                guard case .invalidArgument = error else {
                    XCTFail("\(label): expected DeviceError.invalidArgument, got \(error)")
                    continue
                }
                let message = error.description
                let names = [op.name, Self.caseName(op)]
                XCTAssertTrue(names.contains { message.contains($0) },
                              "\(label): the message '\(message)' names neither of \(names)")
            } catch {
                XCTFail("\(label): expected DeviceError.invalidArgument, got \(type(of: error)): \(error)")
            }
        }
    }

    // MARK: Memory

    func testAllocationBeyondTheLimitThrowsOutOfMemory() throws {
        let limit = 4096
        var devices: [any Device] = [CPUDevice(memoryLimitBytes: limit)]
        let skip: (any Error)?
        do { devices.append(try TestDevices.freshOpenCL(memoryLimitBytes: limit)); skip = nil } catch { skip = error }
        for device in devices {
            XCTAssertEqual(device.memory.limitBytes, limit, "\(device.id): memoryLimitBytes not applied")
            let baseline = device.memory.liveBytes
            let held = try device.allocate(512)  // 2 KiB
            XCTAssertEqual(device.memory.liveBytes, baseline + 2048, device.id)
            do {
                let extra = try device.allocate(768)  // 3 KiB more: past the 4 KiB cap
                XCTFail("\(device.id): allocating 3 KiB with \(formatBytes(baseline + 2048)) in use under a 4 KiB "
                        + "limit succeeded (\(extra.count) floats)")
            } catch let error as DeviceError {
                guard case let .outOfMemory(_, requested, inUse, errorLimit) = error else {
                    XCTFail("\(device.id): expected DeviceError.outOfMemory, got \(error)")
                    continue
                }
                XCTAssertEqual(requested, 3072, "\(device.id): \(error)")
                XCTAssertEqual(inUse, baseline + 2048, "\(device.id): \(error)")
                XCTAssertEqual(errorLimit, limit, "\(device.id): \(error)")
                let message = error.description
                XCTAssertTrue(message.contains(formatBytes(3072)), "\(device.id): '\(message)' does not say how much was asked")
                XCTAssertTrue(message.contains(formatBytes(baseline + 2048)),
                              "\(device.id): '\(message)' does not say how much is in use")
            }
            // The failure leaves the pool usable and its count unchanged.
            XCTAssertEqual(device.memory.liveBytes, baseline + 2048, "\(device.id): a failed allocation leaked")
            let small = try device.allocate(256)
            XCTAssertEqual(device.memory.liveBytes, baseline + 3072, device.id)
            withExtendedLifetime((held, small)) {}
        }
        if let skip { throw skip }
    }

    func testPoolCountersAndClearCache() throws {
        let limit = 1 << 20
        var devices: [any Device] = [CPUDevice(memoryLimitBytes: limit)]
        let skip: (any Error)?
        do { devices.append(try TestDevices.freshOpenCL(memoryLimitBytes: limit)); skip = nil } catch { skip = error }
        for device in devices {
            let id = device.id
            let start = device.memory
            var a: DeviceBuffer? = try device.allocate(100)
            var b: DeviceBuffer? = try device.allocate(50)
            XCTAssertEqual(device.memory.liveBytes, start.liveBytes + 600, "\(id): live after two buffers")
            XCTAssertGreaterThanOrEqual(device.memory.peakBytes, start.liveBytes + 600, "\(id): peak")
            XCTAssertNotNil(a); XCTAssertNotNil(b)
            a = nil
            try device.synchronize()
            XCTAssertEqual(device.memory.liveBytes, start.liveBytes + 200, "\(id): live after dropping one")
            XCTAssertEqual(device.memory.cachedBytes, start.cachedBytes + 400, "\(id): the dropped buffer is cached")
            let peak = device.memory.peakBytes
            XCTAssertGreaterThanOrEqual(peak, start.liveBytes + 600, "\(id): peak must not fall")
            // The same size again comes from the cache.
            a = try device.allocate(100)
            XCTAssertEqual(device.memory.cachedBytes, start.cachedBytes, "\(id): a cached buffer was reused")
            XCTAssertEqual(device.memory.liveBytes, start.liveBytes + 600, id)
            a = nil
            b = nil
            try device.synchronize()
            XCTAssertEqual(device.memory.liveBytes, start.liveBytes, "\(id): live back to the start")
            XCTAssertGreaterThan(device.memory.cachedBytes, 0, "\(id): dropped buffers are cached")
            XCTAssertEqual(device.memory.peakBytes, peak, "\(id): peak unchanged")
            device.clearCache()
            XCTAssertEqual(device.memory.cachedBytes, 0, "\(id): clearCache() must empty the cache")
            XCTAssertEqual(device.memory.liveBytes, start.liveBytes, id)
        }
        if let skip { throw skip }
    }

    // MARK: Kernel build errors (OpenCL)

    /// `Kernels/` of this package, found from this file's path.
    static var kernelDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Kernels")
    }

    func testBrokenKernelFileReportsFileAndCompilerLog() throws {
        var rng = TestRandom.generator(self)
        _ = try TestDevices.openCL()  // skip (or fail under CI) first when there is no OpenCL at all
        let fm = FileManager.default
        let files = try fm.contentsOfDirectory(atPath: Self.kernelDirectory.path).sorted()
        let kernelFiles = files.filter { $0.hasSuffix(".cl") }
        guard let broken = kernelFiles.first(where: { $0.contains("elementwise") }) ?? kernelFiles.first else {
            XCTFail("no .cl files in \(Self.kernelDirectory.path)")
            return
        }
        let dir = fm.temporaryDirectory.appendingPathComponent("acai-broken-kernels-\(UUID().uuidString)")
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: dir) }
        for name in files {
            try fm.copyItem(at: Self.kernelDirectory.appendingPathComponent(name), to: dir.appendingPathComponent(name))
        }
        let path = dir.appendingPathComponent(broken)
        var source = try String(contentsOf: path, encoding: .utf8)
        source += "\n__kernel void acai_test_broken(__global float *x) { x[0] = 1.0f +* ; }\n"
        try source.write(to: path, atomically: true, encoding: .utf8)

        setenv("ACAI_KERNEL_DIR", dir.path, 1)
        defer { unsetenv("ACAI_KERNEL_DIR") }
        // A fresh device, so that nothing was built from the embedded sources yet. Building may happen when
        // the device is made or when a kernel of the broken file is first needed: run one op of every family.
        var thrown: (any Error)?
        do {
            let device = try OpenCLDevice()
            for (_, op) in try OpSamples.valid(on: device, using: &rng) {
                try device.run(op)
                try device.synchronize()
            }
        } catch {
            thrown = error
        }
        guard let thrown else {
            XCTFail("with \(broken) broken in ACAI_KERNEL_DIR=\(dir.path), no op of any family failed")
            return
        }
        guard let deviceError = thrown as? DeviceError, case let .kernelBuild(file, _, log) = deviceError else {
            XCTFail("expected DeviceError.kernelBuild for \(broken), got \(type(of: thrown)): \(thrown)")
            return
        }
        XCTAssertTrue(file.contains(broken), "kernelBuild names '\(file)', not the broken file \(broken)")
        XCTAssertFalse(log.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "empty compiler log")
        XCTAssertTrue(log.contains("error"), "the compiler log does not report an error: \(log)")
        let message = deviceError.description
        XCTAssertTrue(message.contains(broken), "the message does not name \(broken): \(message)")
        XCTAssertTrue(message.contains(log), "the message does not include the compiler log: \(message)")
    }
}
