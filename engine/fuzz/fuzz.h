/* fuzz.h - what the libFuzzer harnesses share (engine/fuzz/fuzz_*.c, `make fuzz`). Each
** harness defines LLVMFuzzerTestOneInput; a finding is a crash, a sanitizer report, a
** timeout or a broken property (abort with the reason on stderr). */
#ifndef WD_FUZZ_H
#define WD_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_ASSERT(cond, ...)                                                                                         \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "property broken: " __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                                       \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
