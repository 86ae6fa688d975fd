import ACAICPU
import ACAIDevice
import ACAIOpenCL
import Foundation
import XCTest

/// The devices op tests run on, and the policy for a missing OpenCL device.
///
/// Under `CI=true` (or `ACAI_REQUIRE_OPENCL=1`) an unavailable OpenCL device is a test failure (a thrown
/// error), never a skip: CI must prove the kernels ran. Elsewhere (a laptop without OpenCL) the OpenCL part
/// is skipped with `XCTSkip` and a message saying how to get it.
public enum TestDevices {
    /// One shared CPU device (default threads, default memory limit).
    public static let cpu = CPUDevice()

    private static let sharedOpenCL: Result<OpenCLDevice, any Error> = Result { try OpenCLDevice() }

    /// A new CPU device whose ops run on the calling thread alone (the device of a local replica).
    public static func singleThreadedCPU() -> CPUDevice { CPUDevice(threads: 1) }

    /// True when a missing OpenCL device must fail the tests.
    public static var openCLRequired: Bool {
        let env = ProcessInfo.processInfo.environment
        return ["true", "1", "yes"].contains(env["CI"]?.lowercased() ?? "") || env["ACAI_REQUIRE_OPENCL"] == "1"
    }

    /// The shared OpenCL device (index 0). Throws `XCTSkip` when it is unavailable and not required, and an
    /// `OpenCLRequiredError` (a failure) when it is required.
    public static func openCL() throws -> OpenCLDevice {
        switch sharedOpenCL {
        case let .success(device): return device
        case let .failure(error): throw unavailable(error)
        }
    }

    /// A new OpenCL device (for tests that need their own pool or freshly built kernels), with the same
    /// skip-or-fail policy as `openCL()`.
    public static func freshOpenCL(memoryLimitBytes: Int? = nil) throws -> OpenCLDevice {
        do {
            return try OpenCLDevice(index: 0, memoryLimitBytes: memoryLimitBytes)
        } catch {
            throw unavailable(error)
        }
    }

    /// The error to throw for an unavailable OpenCL device under the current policy.
    public static func unavailable(_ error: any Error) -> any Error {
        let hint = "install pocl-opencl-icd and ocl-icd-opencl-dev (and set POCL_CACHE_DIR to a writable folder)"
        if openCLRequired {
            return OpenCLRequiredError(message: "OpenCL device required (CI=true or ACAI_REQUIRE_OPENCL=1) but "
                                       + "unavailable: \(error); \(hint)")
        }
        return XCTSkip("OpenCL device unavailable (\(error)); \(hint). Set ACAI_REQUIRE_OPENCL=1 to make this a failure.")
    }

    /// Runs `body` on the CPU device, then on the OpenCL device. When OpenCL is unavailable the CPU part still
    /// runs; afterwards the test is skipped (or fails, when OpenCL is required).
    public static func forEach(_ body: (any Device) throws -> Void) throws {
        try body(cpu)
        try body(try openCL())
    }
}

/// Thrown when OpenCL is required (CI) but no device could be created.
public struct OpenCLRequiredError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Runs `body` and asserts that it executed at least one op implementation (CPU) or kernel (OpenCL) on
/// `device`: proof that the work really ran on the device the test meant.
@discardableResult
public func assertLaunches<T>(on device: any Device, _ context: @autoclosure () -> String,
                              file: StaticString = #filePath, line: UInt = #line,
                              _ body: () throws -> T) rethrows -> T {
    let before = device.launchCount
    let result = try body()
    let after = device.launchCount
    XCTAssertGreaterThan(after, before, "\(context()): launchCount of \(device.id) did not increase, so nothing "
                         + "ran on it", file: file, line: line)
    return result
}
