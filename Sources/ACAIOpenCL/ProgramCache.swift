import ACAIDevice
import COpenCL
import Foundation

/// Loads kernel sources, builds programs lazily (once per context) and keeps their kernels.
///
/// - Sources come from `EmbeddedKernels.sources` (generated from `Kernels/` at build time), or from
///   `$ACAI_KERNEL_DIR/<file>` when that variable is set, so edited kernels load without a rebuild.
///   `common.h` is prepended to every file (OpenCL cannot `#include` a string), followed by a `#line`
///   directive so compiler messages name the right file and line.
/// - Programs are keyed by a content hash of (source, build options, device name, driver version).
/// - Kernels are created once per (program, kernel name) and reused; their arguments are set at each
///   launch under the device's lock.
final class ProgramCache: @unchecked Sendable {
    static let commonHeader = "common.h"

    private let lock = NSLock()
    private let context: CLContext
    private let device: cl_device_id
    private let deviceKey: String
    let kernelDirectory: String?
    private var sources: [String: String] = [:]
    private var programs: [UInt64: CLProgram] = [:]
    private var kernels: [String: CLKernel] = [:]
    /// Programs built so far and the seconds spent building them.
    private var buildCount = 0
    private var buildSeconds = 0.0

    var buildStatistics: (count: Int, seconds: Double) { lock.withLock { (buildCount, buildSeconds) } }

    init(context: CLContext, device: cl_device_id, deviceName: String, driverVersion: String,
         kernelDirectory: String? = ProcessInfo.processInfo.environment["ACAI_KERNEL_DIR"]) {
        self.context = context
        self.device = device
        self.deviceKey = deviceName + "\u{1}" + driverVersion
        let dir = kernelDirectory?.trimmingCharacters(in: .whitespaces)
        self.kernelDirectory = (dir?.isEmpty ?? true) ? nil : dir
    }

    /// The kernel `name` of `file` built with `options`.
    func kernel(file: String, name: String, options: String) throws -> CLKernel {
        let key = file + "|" + options + "|" + name
        return try lock.withLock {
            if let kernel = kernels[key] { return kernel }
            let program = try programLocked(file: file, options: options)
            let kernel = try CLKernel(program: program, name: name, device: device)
            kernels[key] = kernel
            return kernel
        }
    }

    /// Builds (or finds) the program for `file` and `options`; exposed for warm-up and tests.
    func program(file: String, options: String) throws -> CLProgram {
        try lock.withLock { try programLocked(file: file, options: options) }
    }

    /// Forgets every program and kernel (they are rebuilt on next use).
    func clear() {
        lock.withLock {
            kernels.removeAll()
            programs.removeAll()
            sources.removeAll()
        }
    }

    private func programLocked(file: String, options: String) throws -> CLProgram {
        let source = try sourceLocked(file)
        var hash = FNV1a()
        hash.combine(source)
        hash.combine(options)
        hash.combine(deviceKey)
        if let program = programs[hash.value] { return program }
        let start = monotonicNanoseconds()
        let program = try build(file: file, source: source, options: options)
        buildCount += 1
        buildSeconds += Double(monotonicNanoseconds() - start) / 1e9
        programs[hash.value] = program
        return program
    }

    private func sourceLocked(_ file: String) throws -> String {
        if let text = sources[file] { return text }
        let header = try load(Self.commonHeader)
        let body = try load(file)
        let text = header + "\n#line 1 \"\(file)\"\n" + body
        sources[file] = text
        return text
    }

    private func load(_ file: String) throws -> String {
        if let dir = kernelDirectory {
            let path = (dir as NSString).appendingPathComponent(file)
            do {
                return try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw DeviceError.invalidArgument(
                    "ACAI_KERNEL_DIR is set to \(dir), but the kernel file \(path) cannot be read: "
                        + error.localizedDescription)
            }
        }
        guard let text = EmbeddedKernels.sources[file] else {
            throw DeviceError.invalidArgument(
                "kernel file \(file) is not embedded in this build (Kernels/ holds: "
                    + EmbeddedKernels.sources.keys.sorted().joined(separator: ", ") + ")")
        }
        return text
    }

    private func build(file: String, source: String, options: String) throws -> CLProgram {
        var err: cl_int = 0
        let handle: cl_program? = source.withCString { text in
            var pointer: UnsafePointer<CChar>? = text
            var length = strlen(text)
            return clCreateProgramWithSource(context.handle, 1, &pointer, &length, &err)
        }
        guard let handle, err == CL_SUCCESS else {
            throw DeviceError.openCL(call: "clCreateProgramWithSource(\(file))", code: err == CL_SUCCESS ? -44 : err)
        }
        let program = CLProgram(handle: handle)
        var device: cl_device_id? = self.device
        let code = clBuildProgram(handle, 1, &device, options, nil, nil)
        if code != CL_SUCCESS {
            let log = buildLog(handle)
            if code == CL_BUILD_PROGRAM_FAILURE || !log.isEmpty {
                throw DeviceError.kernelBuild(file: kernelPath(file), options: options,
                                              log: log.isEmpty ? "(the compiler gave no log; error \(code))" : log)
            }
            throw DeviceError.openCL(call: "clBuildProgram(\(file))", code: code)
        }
        return program
    }

    private func kernelPath(_ file: String) -> String {
        guard let dir = kernelDirectory else { return file }
        return (dir as NSString).appendingPathComponent(file)
    }

    private func buildLog(_ program: cl_program) -> String {
        let param = cl_program_build_info(CL_PROGRAM_BUILD_LOG)
        var size = 0
        guard clGetProgramBuildInfo(program, device, param, 0, nil, &size) == CL_SUCCESS, size > 0 else { return "" }
        var bytes = [CChar](repeating: 0, count: size + 1)
        guard clGetProgramBuildInfo(program, device, param, size, &bytes, nil) == CL_SUCCESS else { return "" }
        return bytes.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
