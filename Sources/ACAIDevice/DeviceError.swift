import Foundation

/// Errors a device reports. Each message names what failed and what was expected.
public enum DeviceError: Error, CustomStringConvertible, Sendable {
    /// `requested` bytes could not be allocated while `inUse` bytes were live (and `limit` is the cap).
    case outOfMemory(device: String, requested: Int, inUse: Int, limit: Int)
    /// No OpenCL platform or device could be found; `hint` names the packages to install.
    case openCLUnavailable(String)
    /// A kernel file failed to compile: the file, the build options and the full compiler log.
    case kernelBuild(file: String, options: String, log: String)
    /// An OpenCL call returned an error code.
    case openCL(call: String, code: Int32)
    /// An op's arguments do not fit (wrong sizes, buffer from another device, ...).
    case invalidArgument(String)
    /// A device selection string could not be understood.
    case unknownDevice(String)

    public var description: String {
        switch self {
        case let .outOfMemory(device, requested, inUse, limit):
            return "out of memory on \(device): asked for \(formatBytes(requested)) with \(formatBytes(inUse)) in use (limit \(formatBytes(limit)))"
        case let .openCLUnavailable(hint):
            return "OpenCL is not available: \(hint)"
        case let .kernelBuild(file, options, log):
            return "OpenCL kernel file \(file) failed to build with options '\(options)':\n\(log)"
        case let .openCL(call, code):
            return "\(call) failed with OpenCL error \(code) (\(openCLErrorName(code)))"
        case let .invalidArgument(message):
            return message
        case let .unknownDevice(spec):
            return "unknown device '\(spec)': expected auto, cpu, opencl or opencl:N"
        }
    }
}

public func formatBytes(_ bytes: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while abs(value) >= 1024, unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
}

/// Names of the OpenCL error codes, for messages.
public func openCLErrorName(_ code: Int32) -> String {
    let names: [Int32: String] = [
        -1: "CL_DEVICE_NOT_FOUND", -2: "CL_DEVICE_NOT_AVAILABLE", -3: "CL_COMPILER_NOT_AVAILABLE",
        -4: "CL_MEM_OBJECT_ALLOCATION_FAILURE", -5: "CL_OUT_OF_RESOURCES", -6: "CL_OUT_OF_HOST_MEMORY",
        -7: "CL_PROFILING_INFO_NOT_AVAILABLE", -11: "CL_BUILD_PROGRAM_FAILURE", -30: "CL_INVALID_VALUE",
        -33: "CL_INVALID_DEVICE", -34: "CL_INVALID_CONTEXT", -36: "CL_INVALID_COMMAND_QUEUE",
        -38: "CL_INVALID_MEM_OBJECT", -44: "CL_INVALID_PROGRAM", -45: "CL_INVALID_PROGRAM_EXECUTABLE",
        -46: "CL_INVALID_KERNEL_NAME", -48: "CL_INVALID_KERNEL", -49: "CL_INVALID_ARG_INDEX",
        -50: "CL_INVALID_ARG_VALUE", -51: "CL_INVALID_ARG_SIZE", -52: "CL_INVALID_KERNEL_ARGS",
        -54: "CL_INVALID_WORK_GROUP_SIZE", -55: "CL_INVALID_WORK_ITEM_SIZE", -61: "CL_INVALID_BUFFER_SIZE",
        -63: "CL_INVALID_GLOBAL_WORK_SIZE", -1001: "CL_PLATFORM_NOT_FOUND_KHR",
    ]
    return names[code] ?? "unknown"
}
