#include "fuzzer_driver.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

// libFuzzer's entry for programs that have their own main (compiler-rt, LLVM >= 13).
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
// Defined by each fuzz target's main.swift with @_cdecl.
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void acai_fuzzer_main(int argc, char **argv) {
    exit(LLVMFuzzerRunDriver(&argc, &argv, LLVMFuzzerTestOneInput));
}
