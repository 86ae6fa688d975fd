import ACAIDevice
import COpenCL
import Foundation

// Thin owners of OpenCL handles. OpenCL handles are `OpaquePointer`s, which are not `Sendable`; each
// wrapper owns one reference and releases it in `deinit`. OpenCL's API is thread-safe except for
// `clSetKernelArg` on one kernel object, which `OpenCLDevice` serialises under its lock.

/// Throws `DeviceError.openCL` when an OpenCL call did not return `CL_SUCCESS`.
@inline(__always)
func clCheck(_ code: cl_int, _ call: @autoclosure () -> String) throws {
    if code != CL_SUCCESS { throw DeviceError.openCL(call: call(), code: code) }
}

final class CLContext: @unchecked Sendable {
    let handle: cl_context
    init(device: cl_device_id) throws {
        var device: cl_device_id? = device
        var err: cl_int = 0
        guard let context = clCreateContext(nil, 1, &device, nil, nil, &err), err == CL_SUCCESS else {
            throw DeviceError.openCL(call: "clCreateContext", code: err == CL_SUCCESS ? -34 : err)
        }
        handle = context
    }
    deinit { clReleaseContext(handle) }
}

final class CLQueue: @unchecked Sendable {
    let handle: cl_command_queue
    /// An in-order queue; with profiling enabled only when asked (`ACAI_PROFILE`), since some drivers
    /// pay for the timestamps on every launch.
    init(context: CLContext, device: cl_device_id, profiling: Bool) throws {
        var err: cl_int = 0
        let properties = cl_command_queue_properties(profiling ? CL_QUEUE_PROFILING_ENABLE : 0)
        guard let queue = clCreateCommandQueue(context.handle, device, properties, &err), err == CL_SUCCESS else {
            throw DeviceError.openCL(call: "clCreateCommandQueue", code: err == CL_SUCCESS ? -36 : err)
        }
        handle = queue
    }
    deinit {
        clFinish(handle)
        clReleaseCommandQueue(handle)
    }
}

final class CLProgram: @unchecked Sendable {
    let handle: cl_program
    init(handle: cl_program) { self.handle = handle }
    deinit { clReleaseProgram(handle) }
}

final class CLKernel: @unchecked Sendable {
    let handle: cl_kernel
    let name: String
    /// CL_KERNEL_WORK_GROUP_SIZE: the largest work-group this kernel may be launched with on the device.
    let maxWorkGroupSize: Int
    /// Keeps the program alive as long as the kernel.
    let program: CLProgram

    init(program: CLProgram, name: String, device: cl_device_id) throws {
        var err: cl_int = 0
        guard let kernel = clCreateKernel(program.handle, name, &err), err == CL_SUCCESS else {
            throw DeviceError.openCL(call: "clCreateKernel(\(name))", code: err == CL_SUCCESS ? -48 : err)
        }
        handle = kernel
        self.name = name
        self.program = program
        var size = 0
        let code = clGetKernelWorkGroupInfo(kernel, device, cl_kernel_work_group_info(CL_KERNEL_WORK_GROUP_SIZE),
                                            MemoryLayout<Int>.size, &size, nil)
        maxWorkGroupSize = code == CL_SUCCESS && size > 0 ? size : 1
    }
    deinit { clReleaseKernel(handle) }
}

/// An OpenCL event of a kernel launched while profiling, waiting to be read.
struct PendingEvent {
    let event: cl_event
    let name: String
    let flops: Double
    let bytes: Double
}

// MARK: - Info queries

func clDeviceString(_ device: cl_device_id, _ param: Int32) throws -> String {
    var size = 0
    try clCheck(clGetDeviceInfo(device, cl_device_info(param), 0, nil, &size), "clGetDeviceInfo")
    var bytes = [CChar](repeating: 0, count: size + 1)
    try clCheck(clGetDeviceInfo(device, cl_device_info(param), size, &bytes, nil), "clGetDeviceInfo")
    return trimmedCString(bytes)
}

func clDeviceValue<T: FixedWidthInteger>(_ device: cl_device_id, _ param: Int32, as type: T.Type) throws -> T {
    var value: T = 0
    try clCheck(clGetDeviceInfo(device, cl_device_info(param), MemoryLayout<T>.size, &value, nil), "clGetDeviceInfo")
    return value
}

func clPlatformString(_ platform: cl_platform_id, _ param: Int32) throws -> String {
    var size = 0
    try clCheck(clGetPlatformInfo(platform, cl_platform_info(param), 0, nil, &size), "clGetPlatformInfo")
    var bytes = [CChar](repeating: 0, count: size + 1)
    try clCheck(clGetPlatformInfo(platform, cl_platform_info(param), size, &bytes, nil), "clGetPlatformInfo")
    return trimmedCString(bytes)
}

private func trimmedCString(_ bytes: [CChar]) -> String {
    let text = bytes.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    return text.trimmingCharacters(in: .whitespacesAndNewlines)
}

// MARK: - Hashing

/// FNV-1a, 64 bit: a stable content hash (Swift's `Hasher` is seeded per process).
struct FNV1a {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
    mutating func combine(_ text: String) {
        for byte in text.utf8 {
            value ^= UInt64(byte)
            value &*= 0x0000_0100_0000_01B3
        }
        // A separator, so that ("ab", "c") and ("a", "bc") differ.
        value ^= 0xFF
        value &*= 0x0000_0100_0000_01B3
    }
}
