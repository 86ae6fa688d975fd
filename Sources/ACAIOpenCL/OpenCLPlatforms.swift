import ACAIDevice
import COpenCL
import Foundation

/// What kind of processor an OpenCL device is.
public enum OpenCLDeviceType: String, Sendable {
    case gpu = "GPU"
    case cpu = "CPU"
    case accelerator = "accelerator"
    case other = "other"
}

/// One OpenCL device, as `acai devices` lists it. `index` is the flat index that `opencl:N` selects:
/// devices are numbered over all platforms in platform order, and within a platform in the driver's order.
public struct OpenCLDeviceInfo: Sendable, CustomStringConvertible {
    public var index: Int
    public var platformIndex: Int
    public var platformName: String
    public var name: String
    public var vendor: String
    /// CL_DEVICE_VERSION, e.g. "OpenCL 3.0 PoCL ...".
    public var version: String
    public var driverVersion: String
    /// CL_DEVICE_OPENCL_C_VERSION, e.g. "OpenCL C 1.2 PoCL".
    public var openCLCVersion: String
    public var type: OpenCLDeviceType
    public var computeUnits: Int
    public var globalMemoryBytes: Int
    public var localMemoryBytes: Int
    public var maxWorkGroupSize: Int
    /// CL_DEVICE_MAX_WORK_ITEM_SIZES: the largest work-group extent in each dimension.
    public var maxWorkItemSizes: [Int]
    /// CL_DEVICE_MAX_MEM_ALLOC_SIZE: the largest single buffer.
    public var maxAllocationBytes: Int
    /// CL_DEVICE_MEM_BASE_ADDR_ALIGN in bytes: where sub-buffers (views) may start.
    public var baseAddressAlignmentBytes: Int
    public var supportsFP16: Bool
    public var supportsFP64: Bool
    public var extensions: [String]

    /// One line: name, type, units, memory, driver and the fp16/fp64 flags.
    public var summary: String {
        "\(name) [\(type.rawValue), \(vendor)], \(computeUnits) compute units, \(formatBytes(globalMemoryBytes)) "
            + "(max buffer \(formatBytes(maxAllocationBytes))), work-group \(maxWorkGroupSize), \(version), "
            + "driver \(driverVersion), fp16 \(supportsFP16 ? "yes" : "no"), fp64 \(supportsFP64 ? "yes" : "no")"
    }

    public var description: String { "opencl:\(index) \(summary)" }
}

/// One OpenCL platform (driver) and its devices.
public struct OpenCLPlatformInfo: Sendable {
    public var index: Int
    public var name: String
    public var vendor: String
    public var version: String
    public var devices: [OpenCLDeviceInfo]
}

/// Enumerates the installed OpenCL platforms and devices.
public enum OpenCLPlatforms {
    /// The hint given when no OpenCL platform or device can be found: which packages to install.
    public static let installHint =
        "Install the ICD loader and a driver: on Debian/Ubuntu "
        + "`apt-get install ocl-icd-libopencl1 pocl-opencl-icd` (PoCL runs on any CPU) or your GPU vendor's "
        + "OpenCL driver (e.g. intel-opencl-icd, mesa-opencl-icd, nvidia-opencl-icd, rocm-opencl-runtime); "
        + "`clinfo` lists what is installed. PoCL reports no devices when its kernel cache folder cannot be "
        + "created: make POCL_CACHE_DIR (default ~/.cache/pocl) point at a writable folder."

    /// Every platform with its devices. Throws `DeviceError.openCLUnavailable` when there is no platform
    /// or no platform has a device.
    public static func list() throws -> [OpenCLPlatformInfo] {
        try enumerate().map(\.info)
    }

    /// Every device, flat, in `opencl:N` order.
    public static func devices() throws -> [OpenCLDeviceInfo] {
        try list().flatMap(\.devices)
    }

    /// The flat index of the first GPU, which `auto` picks; nil when there is none.
    /// Throws `DeviceError.openCLUnavailable` when OpenCL itself is missing.
    public static func defaultGPUIndex() throws -> Int? {
        try devices().first { $0.type == .gpu }?.index
    }

    struct Located {
        var platform: cl_platform_id
        var device: cl_device_id
        var info: OpenCLDeviceInfo
    }

    struct Platform {
        var info: OpenCLPlatformInfo
        var handles: [(cl_platform_id, cl_device_id)]
    }

    /// The device `opencl:index` selects.
    static func locate(index: Int) throws -> Located {
        let platforms = try enumerate()
        var all: [Located] = []
        for p in platforms {
            for (info, handles) in zip(p.info.devices, p.handles) {
                all.append(Located(platform: handles.0, device: handles.1, info: info))
            }
        }
        if all.isEmpty { throw DeviceError.openCLUnavailable("no OpenCL device was found. " + installHint) }
        guard index >= 0, index < all.count else {
            let names = all.map { "opencl:\($0.info.index) \($0.info.name)" }.joined(separator: ", ")
            throw DeviceError.invalidArgument(
                "there is no OpenCL device opencl:\(index); the devices are \(names) (see `acai devices`)")
        }
        return all[index]
    }

    static func enumerate() throws -> [Platform] {
        var count: cl_uint = 0
        let code = clGetPlatformIDs(0, nil, &count)
        if code == -1001 || (code == CL_SUCCESS && count == 0) {
            throw DeviceError.openCLUnavailable(
                "no OpenCL platform was found (no ICD driver is registered). " + installHint)
        }
        try clCheck(code, "clGetPlatformIDs")
        var ids = [cl_platform_id?](repeating: nil, count: Int(count))
        try clCheck(clGetPlatformIDs(count, &ids, nil), "clGetPlatformIDs")

        var platforms: [Platform] = []
        var flat = 0
        for (p, id) in ids.enumerated() {
            guard let platform = id else { continue }
            var deviceCount: cl_uint = 0
            let all = cl_device_type(CL_DEVICE_TYPE_ALL)
            let dcode = clGetDeviceIDs(platform, all, 0, nil, &deviceCount)
            var devices: [cl_device_id] = []
            if dcode == CL_SUCCESS, deviceCount > 0 {
                var raw = [cl_device_id?](repeating: nil, count: Int(deviceCount))
                try clCheck(clGetDeviceIDs(platform, all, deviceCount, &raw, nil), "clGetDeviceIDs")
                devices = raw.compactMap { $0 }
            } else if dcode != CL_DEVICE_NOT_FOUND, dcode != CL_SUCCESS {
                throw DeviceError.openCL(call: "clGetDeviceIDs", code: dcode)
            }
            let platformName = try clPlatformString(platform, CL_PLATFORM_NAME)
            var infos: [OpenCLDeviceInfo] = []
            for device in devices {
                infos.append(try describe(device, index: flat, platformIndex: p, platformName: platformName))
                flat += 1
            }
            platforms.append(Platform(
                info: OpenCLPlatformInfo(index: p, name: platformName,
                                         vendor: try clPlatformString(platform, CL_PLATFORM_VENDOR),
                                         version: try clPlatformString(platform, CL_PLATFORM_VERSION),
                                         devices: infos),
                handles: devices.map { (platform, $0) }))
        }
        if platforms.isEmpty {
            throw DeviceError.openCLUnavailable("no OpenCL platform was found. " + installHint)
        }
        if platforms.allSatisfy({ $0.info.devices.isEmpty }) {
            let names = platforms.map { "'\($0.info.name)'" }.joined(separator: ", ")
            throw DeviceError.openCLUnavailable("the OpenCL platform(s) \(names) report no devices. " + installHint)
        }
        return platforms
    }

    static func workItemSizes(_ device: cl_device_id) throws -> [Int] {
        let dimensions = Int(try clDeviceValue(device, CL_DEVICE_MAX_WORK_ITEM_DIMENSIONS, as: cl_uint.self))
        var sizes = [Int](repeating: 0, count: max(dimensions, 3))
        try clCheck(clGetDeviceInfo(device, cl_device_info(CL_DEVICE_MAX_WORK_ITEM_SIZES),
                                    MemoryLayout<Int>.stride * sizes.count, &sizes, nil), "clGetDeviceInfo")
        return sizes.map { max($0, 1) }
    }

    static func describe(_ device: cl_device_id, index: Int, platformIndex: Int,
                         platformName: String) throws -> OpenCLDeviceInfo {
        let typeBits = try clDeviceValue(device, CL_DEVICE_TYPE, as: cl_device_type.self)
        let type: OpenCLDeviceType
        if typeBits & cl_device_type(CL_DEVICE_TYPE_GPU) != 0 {
            type = .gpu
        } else if typeBits & cl_device_type(CL_DEVICE_TYPE_CPU) != 0 {
            type = .cpu
        } else if typeBits & cl_device_type(CL_DEVICE_TYPE_ACCELERATOR) != 0 {
            type = .accelerator
        } else {
            type = .other
        }
        let extensions = try clDeviceString(device, CL_DEVICE_EXTENSIONS)
            .split(separator: " ").map(String.init).filter { !$0.isEmpty }
        return OpenCLDeviceInfo(
            index: index, platformIndex: platformIndex, platformName: platformName,
            name: try clDeviceString(device, CL_DEVICE_NAME),
            vendor: try clDeviceString(device, CL_DEVICE_VENDOR),
            version: try clDeviceString(device, CL_DEVICE_VERSION),
            driverVersion: try clDeviceString(device, CL_DRIVER_VERSION),
            openCLCVersion: try clDeviceString(device, CL_DEVICE_OPENCL_C_VERSION),
            type: type,
            computeUnits: Int(try clDeviceValue(device, CL_DEVICE_MAX_COMPUTE_UNITS, as: cl_uint.self)),
            globalMemoryBytes: Int(clamping: try clDeviceValue(device, CL_DEVICE_GLOBAL_MEM_SIZE, as: cl_ulong.self)),
            localMemoryBytes: Int(clamping: try clDeviceValue(device, CL_DEVICE_LOCAL_MEM_SIZE, as: cl_ulong.self)),
            maxWorkGroupSize: try clDeviceValue(device, CL_DEVICE_MAX_WORK_GROUP_SIZE, as: Int.self),
            maxWorkItemSizes: try workItemSizes(device),
            maxAllocationBytes: Int(clamping: try clDeviceValue(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE,
                                                                 as: cl_ulong.self)),
            baseAddressAlignmentBytes: max(Int(try clDeviceValue(device, CL_DEVICE_MEM_BASE_ADDR_ALIGN,
                                                                  as: cl_uint.self)) / 8, 4),
            supportsFP16: extensions.contains("cl_khr_fp16"),
            supportsFP64: extensions.contains("cl_khr_fp64"),
            extensions: extensions)
    }
}
