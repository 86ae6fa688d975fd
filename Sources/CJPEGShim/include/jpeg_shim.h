#ifndef ACAI_JPEG_SHIM_H
#define ACAI_JPEG_SHIM_H

// A JPEG decoder for Swift that never exits and never longjmps through Swift frames: libjpeg's fatal
// errors are caught with setjmp/longjmp entirely inside jpeg_shim.c and reported as a return code plus
// libjpeg's message.

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The largest image decoded (4096 x 4096 pixels; CelebA's are 178 x 218): a frame header claiming more is
/// refused before anything is allocated, and libjpeg's own buffers are capped at 1 GiB (max_memory_to_use).
#define ACAI_JPEG_MAX_PIXELS (1ULL << 24)

/// Decodes the JPEG `data[0..<size]` to interleaved 8-bit RGB (libjpeg converts greyscale and YCbCr to
/// RGB: out_color_space = JCS_RGB), `*height` rows of `*width` pixels of `*channels` (= 3) bytes.
/// `accurate_dct` = 0 uses JDCT_IFAST, the default of TensorFlow's decode_jpeg/decode_image (which the
/// reference pipeline uses); non-zero uses JDCT_ISLOW, libjpeg's own default (as Pillow, djpeg).
/// Fancy upsampling is on (libjpeg's and TensorFlow's default).
/// Returns 0 on success, with `*pixels` malloc'ed (release it with acai_jpeg_free). On failure returns
/// non-zero, sets `*pixels` to NULL and writes a NUL-terminated message (libjpeg's own, e.g. "Not a
/// JPEG file: starts with 0x89 0x50") into `error[0..<error_size]`. A file that ends before its last
/// scanline ("Premature end of JPEG file", a warning for libjpeg) or whose entropy-coded data ends before
/// the last block ("Corrupt JPEG data: premature end of data segment") is a failure here, reported as soon
/// as libjpeg meets it.
int acai_jpeg_decode(const unsigned char *data, size_t size, int accurate_dct,
                     unsigned char **pixels, int *width, int *height, int *channels,
                     char *error, size_t error_size);

/// Releases pixels returned by acai_jpeg_decode, or bytes returned by acai_jpeg_encode (NULL is allowed).
void acai_jpeg_free(unsigned char *pixels);

/// Encodes `height` rows of `width` pixels of `channels` (1 = grey, 3 = RGB) interleaved bytes as a baseline
/// JPEG of `quality` (1-100). Returns 0 on success with `*out` malloc'ed (`*out_size` bytes; release it with
/// acai_jpeg_free); non-zero on failure, with libjpeg's message in `error`.
int acai_jpeg_encode(const unsigned char *pixels, int width, int height, int channels, int quality,
                     unsigned char **out, size_t *out_size, char *error, size_t error_size);

#ifdef __cplusplus
}
#endif

#endif
