/* Decoding and resizing images (data_image.h). */
#include "data_image.h"

#include <math.h>
#include <png.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h> /* after stdio.h: it names FILE */

int data_image_channels(const char *mode)
{
    if (!mode)
        return 0;
    if (!strcmp(mode, "L"))
        return 1;
    if (!strcmp(mode, "RGB"))
        return 3;
    if (!strcmp(mode, "RGBA"))
        return 4;
    return -1;
}

/* Room for rows [top, top + rows) of an image of h x w x c, or -1 past
 * the limit (the whole image's). */
static int alloc_pixels(data_image *out, int h, int w, int c, int top, int rows, char *err,
                        size_t n)
{
    if (h <= 0 || w <= 0 || (uint64_t)h * (uint64_t)w * (uint64_t)c > DATA_IMAGE_MAX_BYTES) {
        snprintf(err, n, "an image of %d x %d pixels is too large (at most %u bytes decoded)", w, h,
                 DATA_IMAGE_MAX_BYTES);
        return -1;
    }
    out->px = malloc((size_t)rows * (size_t)w * (size_t)c);
    if (!out->px) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    out->h = h;
    out->w = w;
    out->c = c;
    out->top = top;
    out->rows = rows;
    return 0;
}

/* One decoder a thread, kept from image to image: a new one for each image
 * also set up the decoder's working buffers anew, fresh memory each time,
 * and the decode's stores into it cost as much as the crop and flip. The
 * libjpeg API (not TurboJPEG's) so that a crop decodes only its rows. */
typedef struct jpeg_decoder {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr jerr;
    jmp_buf on_error;
    char msg[JMSG_LENGTH_MAX];
} jpeg_decoder;

static pthread_key_t jpeg_key;
static pthread_once_t jpeg_once = PTHREAD_ONCE_INIT;

static void jpeg_drop(void *p)
{
    jpeg_decoder *d = p;
    jpeg_destroy_decompress(&d->cinfo);
    free(d);
}

static void jpeg_key_make(void) { pthread_key_create(&jpeg_key, jpeg_drop); }

static void jpeg_fail(j_common_ptr c)
{
    jpeg_decoder *d = (jpeg_decoder *)(void *)c;
    c->err->format_message(c, d->msg);
    longjmp(d->on_error, 1);
}

/* A warning (a truncated file) fails too: its pixels are not all there. */
static void jpeg_warn(j_common_ptr c, int level)
{
    if (level < 0)
        jpeg_fail(c);
}

static jpeg_decoder *thread_decoder(void)
{
    pthread_once(&jpeg_once, jpeg_key_make);
    jpeg_decoder *d = pthread_getspecific(jpeg_key);
    if (d || !(d = calloc(1, sizeof *d)))
        return d;
    d->cinfo.err = jpeg_std_error(&d->jerr);
    d->jerr.error_exit = jpeg_fail;
    d->jerr.emit_message = jpeg_warn;
    if (setjmp(d->on_error)) { /* out of memory */
        free(d);
        return NULL;
    }
    jpeg_create_decompress(&d->cinfo);
    if (pthread_setspecific(jpeg_key, d) != 0) {
        jpeg_drop(d);
        return NULL;
    }
    return d;
}

/* decode_jpeg's steps, which fail by a jump back into it (jpeg_fail):
 * `*started` is set once the pixels are being decoded. */
static int jpeg_rows(struct jpeg_decompress_struct *c, const uint8_t *buf, size_t len, int channels,
                     data_rows_fn pick, void *ud, data_image *out, volatile int *started, char *err,
                     size_t n)
{
    jpeg_mem_src(c, buf, (unsigned long)len);
    jpeg_read_header(c, TRUE);
    if (channels == 0)
        channels = c->jpeg_color_space == JCS_GRAYSCALE ? 1 : 3;
    c->out_color_space = channels == 1 ? JCS_GRAYSCALE : channels == 3 ? JCS_RGB : JCS_EXT_RGBA;
    int h = (int)c->image_height, w = (int)c->image_width, top = 0, rows = h;
    if (pick && h > 0 && w > 0)
        pick(ud, h, w, &top, &rows);
    if (top < 0 || rows <= 0 || top > h - rows) { /* the whole image */
        top = 0;
        rows = h;
    }
    if (alloc_pixels(out, h, w, channels, top, rows, err, n) != 0) {
        jpeg_abort_decompress(c);
        return -1;
    }
    *started = 1;
    jpeg_start_decompress(c);
    if (top > 0)
        jpeg_skip_scanlines(c, (JDIMENSION)top);
    size_t line = (size_t)w * (size_t)channels;
    while ((int)c->output_scanline < top + rows) {
        JSAMPROW at[4];
        int k = 0, y = (int)c->output_scanline - top;
        for (; k < 4 && y + k < rows; k++)
            at[k] = out->px + (size_t)(y + k) * line;
        jpeg_read_scanlines(c, at, (JDIMENSION)k);
    }
    if (c->output_scanline == c->output_height)
        jpeg_finish_decompress(c);
    else
        jpeg_abort_decompress(c);
    return 0;
}

/* The rows [top, top + rows) that `pick` chooses of the image: the rows
 * above are skipped (entropy-decoded only), the rows below not decoded at
 * all. */
static int decode_jpeg(const uint8_t *buf, size_t len, int channels, data_rows_fn pick, void *ud,
                       data_image *out, char *err, size_t n)
{
    jpeg_decoder *d = thread_decoder();
    if (!d) {
        snprintf(err, n, "cannot start the JPEG decoder");
        return -1;
    }
    if (len > (size_t)0xffffffffu) {
        snprintf(err, n, "not a valid JPEG: too large");
        return -1;
    }
    volatile int started = 0;
    if (setjmp(d->on_error)) {
        jpeg_abort_decompress(&d->cinfo);
        free(out->px);
        out->px = NULL;
        snprintf(err, n, "%s: %s", started ? "a corrupt JPEG" : "not a valid JPEG", d->msg);
        return -1;
    }
    return jpeg_rows(&d->cinfo, buf, len, channels, pick, ud, out, &started, err, n);
}

/* Every row, whatever `pick` chooses: the simplified API reads whole images. */
static int decode_png(const uint8_t *buf, size_t len, int channels, data_rows_fn pick, void *ud,
                      data_image *out, char *err, size_t n)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&img, buf, len)) {
        snprintf(err, n, "not a valid PNG: %s", img.message);
        return -1;
    }
    if (channels == 0)
        channels = img.format & PNG_FORMAT_FLAG_ALPHA   ? 4
                   : img.format & PNG_FORMAT_FLAG_COLOR ? 3
                                                        : 1;
    img.format = channels == 1 ? PNG_FORMAT_GRAY : channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA;
    if (img.width > 65536 || img.height > 65536 ||
        alloc_pixels(out, (int)img.height, (int)img.width, channels, 0, (int)img.height, err, n) !=
            0) {
        if (img.width > 65536 || img.height > 65536)
            snprintf(err, n, "a PNG of %u x %u pixels is too large", img.width, img.height);
        png_image_free(&img);
        return -1;
    }
    if (pick) {
        int top = 0, rows = out->h;
        pick(ud, out->h, out->w, &top, &rows);
    }
    if (!png_image_finish_read(&img, NULL, out->px, 0, NULL)) {
        snprintf(err, n, "a corrupt PNG: %s", img.message);
        png_image_free(&img);
        free(out->px);
        out->px = NULL;
        return -1;
    }
    return 0;
}

int data_image_decode(const uint8_t *buf, size_t len, int channels, data_rows_fn pick, void *ud,
                      data_image *out, char *err, size_t n)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memset(out, 0, sizeof *out);
    if (len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff)
        return decode_jpeg(buf, len, channels, pick, ud, out, err, n);
    if (len >= 8 && !memcmp(buf, png_sig, 8))
        return decode_png(buf, len, channels, pick, ud, out, err, n);
    snprintf(err, n, "not a JPEG or PNG image");
    return -1;
}

/* Where output index `o` of `on` falls in an input of `in` (pixel centres
 * aligned, as PIL and torchvision without antialiasing): index i0, the next
 * i1, and the weight of i1. */
static void source(int o, int on, int in, int *i0, int *i1, float *f)
{
    float s = ((float)o + 0.5f) * (float)in / (float)on - 0.5f;
    if (s < 0)
        s = 0;
    *i0 = (int)s;
    if (*i0 > in - 1)
        *i0 = in - 1;
    *i1 = *i0 + 1 < in ? *i0 + 1 : in - 1;
    *f = s - (float)*i0;
}

void data_image_resize(const uint8_t *in, int ih, int iw, int c, uint8_t *out, int h, int w,
                       int nearest)
{
    for (int y = 0; y < h; y++) {
        int y0, y1;
        float fy;
        source(y, h, ih, &y0, &y1, &fy);
        for (int x = 0; x < w; x++) {
            uint8_t *o = out + ((size_t)y * (size_t)w + (size_t)x) * (size_t)c;
            if (nearest) {
                int sy = (int)(((int64_t)y * ih) / h), sx = (int)(((int64_t)x * iw) / w);
                memcpy(o, in + ((size_t)sy * (size_t)iw + (size_t)sx) * (size_t)c, (size_t)c);
                continue;
            }
            int x0, x1;
            float fx;
            source(x, w, iw, &x0, &x1, &fx);
            const uint8_t *a = in + ((size_t)y0 * (size_t)iw + (size_t)x0) * (size_t)c;
            const uint8_t *b = in + ((size_t)y0 * (size_t)iw + (size_t)x1) * (size_t)c;
            const uint8_t *p = in + ((size_t)y1 * (size_t)iw + (size_t)x0) * (size_t)c;
            const uint8_t *q = in + ((size_t)y1 * (size_t)iw + (size_t)x1) * (size_t)c;
            for (int k = 0; k < c; k++) {
                float top = (float)a[k] + ((float)b[k] - (float)a[k]) * fx;
                float bot = (float)p[k] + ((float)q[k] - (float)p[k]) * fx;
                o[k] = (uint8_t)lrintf(top + (bot - top) * fy);
            }
        }
    }
}
