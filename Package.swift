// swift-tools-version: 6.0
import Foundation
import PackageDescription

// Layers (each imports only those below it):
//   acai (CLI) -> ACAI (tensors, autodiff, optimisers, device selection, benchmarks)
//   -> ACAICPU (BLAS) / ACAIOpenCL (Kernels/*.cl) -> ACAIDevice (protocol, op table, pool, profiler)
// Only ACAICPU imports CBLAS and CLAPACK, only ACAIOpenCL imports COpenCL, and only ACAIDistributed (beside
// ACAIDevice, whose `Collective` protocol it implements) imports CMPI.

// The CPU device's SIMD tiles are compiled for the building machine's CPU; ACAI_TARGET_CPU (e.g. haswell)
// names another, for a binary that must run on a different machine.
let cpuTarget = ProcessInfo.processInfo.environment["ACAI_TARGET_CPU"] ?? "native"

// ACAI_FUZZ=1 (tools/fuzz.sh, with its own --scratch-path .build-fuzz) adds the libFuzzer targets: one executable
// per folder Fuzz/<name>/main.swift, product fuzz-<name>, each driving the entry of the same name in
// Sources/ACAIFuzz. The parsers' modules are compiled with coverage and AddressSanitizer. Without ACAI_FUZZ
// nothing here changes the ordinary build (nor CMake, which lists its own targets).
let fuzzing = ProcessInfo.processInfo.environment["ACAI_FUZZ"] == "1"

let package = Package(
    name: "acai",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "ACAI", targets: ["ACAI"]),
        .executable(name: "acai", targets: ["acai"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        // TensorBoard's Event/Summary messages (generated once into ACAITraining/TensorBoardEvent.pb.swift).
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.28.0"),
    ],
    targets: [
        .systemLibrary(name: "COpenCL", pkgConfig: "OpenCL",
                       providers: [.apt(["ocl-icd-opencl-dev", "opencl-headers"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CLAPACK", pkgConfig: "lapacke", providers: [.apt(["liblapacke-dev"])]),
        .systemLibrary(name: "CGIF", pkgConfig: "libgif", providers: [.apt(["libgif-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        // libjpeg behind a C shim that keeps its setjmp/longjmp error recovery inside C.
        .target(name: "CJPEGShim", linkerSettings: [.linkedLibrary("jpeg")]),

        .target(name: "ACAIDevice"),
        // -target-cpu native: the convolution tiles live in SIMD registers, which baseline x86-64 (SSE2)
        // spills; the CPU device is built where it runs (swift build, CI, CMake).
        .target(name: "ACAICPU", dependencies: ["ACAIDevice", "CBLAS", "CLAPACK"],
                swiftSettings: [.unsafeFlags(["-Ounchecked", "-target-cpu", cpuTarget])]),
        .target(name: "ACAIOpenCL", dependencies: ["ACAIDevice", "COpenCL"],
                plugins: [.plugin(name: "EmbedKernelsPlugin")]),
        // The collectives of data-parallel runs over Open MPI; the only target that imports it.
        .target(name: "ACAIDistributed", dependencies: ["ACAIDevice", "CMPI"]),
        .target(name: "ACAI", dependencies: [
            "ACAIDevice", "ACAICPU", "ACAIOpenCL",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "ACAIData", dependencies: ["CZlib", "CJPEGShim"]),
        .target(name: "ACAIImaging", dependencies: ["CPNG", "CGIF"]),
        .target(name: "ACAIModels", dependencies: ["ACAI"]),
        .target(name: "ACAIEval", dependencies: ["ACAI", "ACAIData", "ACAIModels"]),
        .target(name: "ACAITraining", dependencies: ["ACAI", "ACAIModels", "ACAIData", "ACAIEval", "ACAIImaging",
                                                    .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .executableTarget(name: "acai", dependencies: [
            "ACAI", "ACAIDistributed", "ACAIModels", "ACAIData", "ACAIEval", "ACAIImaging", "ACAITraining",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // Build-time embedding of Kernels/*.cl into ACAIOpenCL (the CMake build runs the same tool).
        .executableTarget(name: "embed-kernels", path: "tools/embed-kernels"),
        .plugin(name: "EmbedKernelsPlugin", capability: .buildTool(),
                dependencies: ["embed-kernels"], path: "tools/EmbedKernelsPlugin"),

        .target(name: "ACAITestSupport", dependencies: ["ACAI", "ACAIDevice", "ACAICPU", "ACAIOpenCL"]),
        .testTarget(name: "ACAIDeviceTests", dependencies: ["ACAI", "ACAICPU", "ACAITestSupport"]),
        // The fuzz targets' parser entries, also replayed over Tests/Regressions by the ordinary tests.
        .target(name: "ACAIFuzz", dependencies: ["ACAIData", "ACAIImaging", "ACAITraining"]),
        .testTarget(name: "ACAITests", dependencies: ["ACAI", "ACAIModels", "ACAIData", "ACAIEval", "ACAIImaging", "ACAITraining", "ACAITestSupport", "ACAIFuzz"]),
        .testTarget(name: "ACAIDataTests", dependencies: ["ACAIData"]),
    ],
    swiftLanguageModes: [.v6]
)

if fuzzing {
    let sanitizers = "-sanitize=fuzzer,address"
    for target in package.targets {
        switch target.name {
        case "ACAIData", "ACAIImaging", "ACAIModels", "ACAITraining", "ACAIFuzz":
            target.swiftSettings = (target.swiftSettings ?? []) + [.unsafeFlags([sanitizers])]
        case "CJPEGShim":
            target.cSettings = (target.cSettings ?? []) + [.unsafeFlags(["-fsanitize=fuzzer-no-link,address"])]
        default:
            break
        }
    }
    // libFuzzer's LLVMFuzzerRunDriver, called from each main.swift (SwiftPM renames an executable's main, so
    // libFuzzer's own main cannot be the entry point).
    package.targets.append(.target(name: "CFuzzerDriver", path: "Fuzz/CFuzzerDriver"))
    let folder = Context.packageDirectory + "/Fuzz"
    let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
        .filter { FileManager.default.fileExists(atPath: "\(folder)/\($0)/main.swift") }.sorted()
    for name in names {
        let target = "fuzz_" + name.replacingOccurrences(of: "-", with: "_")
        package.targets.append(.executableTarget(
            name: target, dependencies: ["ACAIFuzz", "CFuzzerDriver"], path: "Fuzz/\(name)",
            swiftSettings: [.unsafeFlags([sanitizers])], linkerSettings: [.unsafeFlags([sanitizers])]))
        package.products.append(.executable(name: "fuzz-\(name)", targets: [target]))
    }
}
