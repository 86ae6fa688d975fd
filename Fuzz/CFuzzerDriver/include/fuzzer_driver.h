#ifndef ACAI_FUZZER_DRIVER_H
#define ACAI_FUZZER_DRIVER_H

/// Runs libFuzzer (LLVMFuzzerRunDriver) with the command line `argc`/`argv` on the target's
/// LLVMFuzzerTestOneInput (the @_cdecl function of its main.swift), then exits with libFuzzer's status.
_Noreturn void acai_fuzzer_main(int argc, char **argv);

#endif
