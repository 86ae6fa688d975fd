#include "jpeg_shim.h"

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    int truncated; // set when libjpeg warned "Premature end of JPEG file"
} acai_error_mgr;

static void acai_error_exit(j_common_ptr cinfo) {
    acai_error_mgr *err = (acai_error_mgr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, err->message);
    longjmp(err->jump, 1);
}

// Warnings and trace messages: never printed to stderr. A premature end of the file (JWRN_JPEG_EOF) or of
// the entropy-coded data (JWRN_HIT_MARKER) is an error for a dataset loader: decoding stops there (libjpeg
// would fill the rest of the image with grey, row after row, however many rows the header claims).
static void acai_emit_message(j_common_ptr cinfo, int msg_level) {
    acai_error_mgr *err = (acai_error_mgr *)cinfo->err;
    if (msg_level < 0) {
        cinfo->err->num_warnings++;
        int code = cinfo->err->msg_code;
        if ((code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER) && !err->truncated) {
            err->truncated = 1;
            (*cinfo->err->format_message)(cinfo, err->message);
            longjmp(err->jump, 1);
        }
    }
}

static void acai_output_message(j_common_ptr cinfo) { (void)cinfo; }

static void acai_set_error(char *error, size_t error_size, const char *message) {
    if (error == NULL || error_size == 0) return;
    snprintf(error, error_size, "%s", message);
}

int acai_jpeg_decode(const unsigned char *data, size_t size, int accurate_dct,
                     unsigned char **pixels, int *width, int *height, int *channels,
                     char *error, size_t error_size) {
    struct jpeg_decompress_struct cinfo;
    acai_error_mgr err;
    unsigned char *volatile out = NULL;

    *pixels = NULL;
    *width = 0;
    *height = 0;
    *channels = 0;
    if (error != NULL && error_size > 0) error[0] = '\0';
    if (data == NULL || size == 0) {
        acai_set_error(error, error_size, "empty input (0 bytes)");
        return 1;
    }
    if ((unsigned long)size != size) {
        acai_set_error(error, error_size, "input too large for libjpeg");
        return 1;
    }

    memset(&err, 0, sizeof err);
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = acai_error_exit;
    err.pub.emit_message = acai_emit_message;
    err.pub.output_message = acai_output_message;

    if (setjmp(err.jump)) {
        acai_set_error(error, error_size, err.message);
        jpeg_destroy_decompress(&cinfo);
        free(out);
        return 1;
    }

    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    // The frame header's size is the file's claim: bounded before libjpeg or this shim allocates by it.
    if ((uint64_t)cinfo.image_width * cinfo.image_height > ACAI_JPEG_MAX_PIXELS) {
        snprintf(err.message, sizeof err.message,
                 "frame header (SOF) width x height %ux%u is more than the %llu pixels accepted",
                 cinfo.image_width, cinfo.image_height, (unsigned long long)ACAI_JPEG_MAX_PIXELS);
        acai_set_error(error, error_size, err.message);
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    // A progressive file's coefficients, and libjpeg's other buffers, stay under this (else an error).
    cinfo.mem->max_memory_to_use = 1L << 30;
    cinfo.out_color_space = JCS_RGB;
    cinfo.dct_method = accurate_dct ? JDCT_ISLOW : JDCT_IFAST;
    cinfo.do_fancy_upsampling = TRUE;
    jpeg_start_decompress(&cinfo);

    const size_t w = cinfo.output_width, h = cinfo.output_height, c = (size_t)cinfo.output_components;
    if (w == 0 || h == 0 || c != 3) {
        snprintf(err.message, sizeof err.message, "unexpected decoded shape %zux%zux%zu", h, w, c);
        acai_set_error(error, error_size, err.message);
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    const size_t row = w * c;
    if (h > SIZE_MAX / row) {
        acai_set_error(error, error_size, "image too large");
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    out = (unsigned char *)malloc(row * h);
    if (out == NULL) {
        acai_set_error(error, error_size, "out of memory");
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW rowPointer = out + (size_t)cinfo.output_scanline * row;
        if (jpeg_read_scanlines(&cinfo, &rowPointer, 1) != 1) {
            snprintf(err.message, sizeof err.message, "decoder stalled at scanline %u of %u",
                     cinfo.output_scanline, cinfo.output_height);
            acai_set_error(error, error_size, err.message);
            jpeg_destroy_decompress(&cinfo);
            free(out);
            return 1;
        }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    if (err.truncated) {
        // libjpeg filled the missing data with grey; a truncated file is an error for a dataset loader.
        acai_set_error(error, error_size, err.message);
        free(out);
        return 1;
    }

    *pixels = out;
    *width = (int)w;
    *height = (int)h;
    *channels = (int)c;
    return 0;
}

void acai_jpeg_free(unsigned char *pixels) { free(pixels); }

int acai_jpeg_encode(const unsigned char *pixels, int width, int height, int channels, int quality,
                     unsigned char **out, size_t *out_size, char *error, size_t error_size) {
    struct jpeg_compress_struct cinfo;
    acai_error_mgr err;
    unsigned char *buffer = NULL;
    unsigned long size = 0;

    *out = NULL;
    *out_size = 0;
    if (error != NULL && error_size > 0) error[0] = '\0';
    if (pixels == NULL || width <= 0 || height <= 0 || (channels != 1 && channels != 3)) {
        acai_set_error(error, error_size, "invalid image: need width, height > 0 and 1 or 3 channels");
        return 1;
    }
    memset(&err, 0, sizeof err);
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = acai_error_exit;
    err.pub.emit_message = acai_emit_message;
    err.pub.output_message = acai_output_message;
    if (setjmp(err.jump)) {
        acai_set_error(error, error_size, err.message);
        jpeg_destroy_compress(&cinfo);
        free(buffer);
        return 1;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &buffer, &size);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = channels;
    cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality < 1 ? 1 : quality > 100 ? 100 : quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    const size_t row = (size_t)width * (size_t)channels;
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW rowPointer = (JSAMPROW)(pixels + (size_t)cinfo.next_scanline * row);
        jpeg_write_scanlines(&cinfo, &rowPointer, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *out = buffer;
    *out_size = (size_t)size;
    return 0;
}
