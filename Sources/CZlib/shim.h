// zlib for ACAIData: gzip (IDX .gz files) and zlib (MATLAB miCOMPRESSED elements) decompression.
// Only the streaming inflate API is used; zlib reports errors through return codes, never longjmp.
#include <zlib.h>
