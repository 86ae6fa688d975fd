import ACAICPU
import ACAIOpenCL
import Foundation
import Logging

/// Chooses the compute device: `auto`, `cpu`, `opencl` or `opencl:N` (from `--device` or `ACAI_DEVICE`).
/// `auto` takes the first OpenCL GPU and otherwise the CPU device, saying why in one log line; an
/// explicit `opencl` fails with the reason (e.g. which driver packages are missing).
public enum DeviceSelection {
    public static let environmentVariable = "ACAI_DEVICE"

    public static func make(_ spec: String? = nil, logger: Logger = Logger(label: "acai.device")) throws -> any Device {
        let value = (spec ?? ProcessInfo.processInfo.environment[environmentVariable] ?? "auto")
            .trimmingCharacters(in: .whitespaces).lowercased()
        switch value {
        case "", "auto":
            do {
                if let gpu = try OpenCLPlatforms.defaultGPUIndex() {
                    return try OpenCLDevice(index: gpu)
                }
                logger.info("auto device: no OpenCL GPU found, using the CPU device")
            } catch {
                logger.info("auto device: OpenCL unavailable (\(error)); using the CPU device")
            }
            return CPUDevice()
        case "cpu":
            return CPUDevice()
        case "opencl", "cl", "gpu":
            return try OpenCLDevice(index: 0)
        default:
            if value.hasPrefix("opencl:"), let index = Int(value.dropFirst("opencl:".count)), index >= 0 {
                return try OpenCLDevice(index: index)
            }
            throw DeviceError.unknownDevice(value)
        }
    }

    /// The device of one process of a data-parallel run, the `localRank`-th of `localSize` on its node: `auto`
    /// takes the node's GPUs in turn (opencl:g for the g-th GPU, g = localRank mod GPUs) and otherwise the CPU
    /// device with the node's cores shared out; an explicit `--device` is used as given (`cpu` still shares
    /// the cores).
    public static func make(_ spec: String?, localRank: Int, localSize: Int,
                            logger: Logger = Logger(label: "acai.device")) throws -> any Device {
        guard localSize > 1 else { return try make(spec, logger: logger) }
        let value = (spec ?? ProcessInfo.processInfo.environment[environmentVariable] ?? "auto")
            .trimmingCharacters(in: .whitespaces).lowercased()
        switch value {
        case "", "auto":
            let gpus = ((try? OpenCLPlatforms.devices()) ?? []).filter { $0.type == .gpu }
            if !gpus.isEmpty { return try OpenCLDevice(index: gpus[localRank % gpus.count].index) }
            return CPUDevice(threads: CPUDevice.shareCores(among: localSize))
        case "cpu":
            return CPUDevice(threads: CPUDevice.shareCores(among: localSize))
        default:
            return try make(value, logger: logger)
        }
    }

    /// What `acai devices` prints: every OpenCL platform and device, the CPU device, and the `auto` choice.
    public static func report() -> String {
        var lines: [String] = []
        var autoChoice = "cpu"
        do {
            let platforms = try OpenCLPlatforms.list()
            var flat = 0
            for (p, platform) in platforms.enumerated() {
                lines.append("OpenCL platform \(p): \(platform.name) (\(platform.vendor)), \(platform.version)")
                for device in platform.devices {
                    lines.append("  opencl:\(flat)  \(device.summary)")
                    flat += 1
                }
            }
            if let gpu = try OpenCLPlatforms.defaultGPUIndex() { autoChoice = "opencl:\(gpu)" }
        } catch {
            lines.append("OpenCL: \(error)")
        }
        let cpu = CPUDevice()
        lines.append("CPU device: cpu  \(cpu.description)")
        lines.append("auto picks: \(autoChoice)")
        return lines.joined(separator: "\n")
    }
}

extension DeviceSelection {
    /// `cpu` and `opencl:N` for every OpenCL device present.
    public static func allDeviceSpecs() -> [String] {
        let count = (try? OpenCLPlatforms.list().reduce(0) { $0 + $1.devices.count }) ?? 0
        return ["cpu"] + (0..<count).map { "opencl:\($0)" }
    }
}
