import ACAIFuzz
import CFuzzerDriver

// libFuzzer calls this with every input; the parsing is FuzzTargets.folderCache (Sources/ACAIFuzz).
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzTargets.folderCache.fuzz(data, size)
}

acai_fuzzer_main(CommandLine.argc, CommandLine.unsafeArgv)
