/* Decoding and resizing images (data_image.h). */
#include "data_image.h"

#include <math.h>
#include <png.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

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

/* Room for an image of h x w x c, or -1 past the limit. */
static int alloc_pixels(data_image *out, int h, int w, int c, char *err, size_t n)
{
    if (h <= 0 || w <= 0 || (uint64_t)h * (uint64_t)w * (uint64_t)c > DATA_IMAGE_MAX_BYTES) {
        snprintf(err, n, "an image of %d x %d pixels is too large (at most %u bytes decoded)", w, h,
                 DATA_IMAGE_MAX_BYTES);
        return -1;
    }
    out->px = malloc((size_t)h * (size_t)w * (size_t)c);
    if (!out->px) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    out->h = h;
    out->w = w;
    out->c = c;
    return 0;
}

/* One decoder a thread, kept from image to image: a new one for each image
 * also set up the decoder's working buffers anew, fresh memory each time,
 * and the decode's stores into it cost as much as the crop and flip. */
static pthread_key_t tj_key;
static pthread_once_t tj_once = PTHREAD_ONCE_INIT;

static void tj_drop(void *tj) { tjDestroy(tj); }

static void tj_key_make(void) { pthread_key_create(&tj_key, tj_drop); }

static tjhandle thread_decoder(void)
{
    pthread_once(&tj_once, tj_key_make);
    tjhandle tj = pthread_getspecific(tj_key);
    if (!tj && (tj = tjInitDecompress()) && pthread_setspecific(tj_key, tj) != 0) {
        tjDestroy(tj);
        tj = NULL;
    }
    return tj;
}

static int decode_jpeg(const uint8_t *buf, size_t len, int channels, data_image *out, char *err,
                       size_t n)
{
    tjhandle tj = thread_decoder();
    int w = 0, h = 0, sub = 0, cs = 0;
    if (!tj) {
        snprintf(err, n, "cannot start the JPEG decoder");
        return -1;
    }
    if (len > (size_t)0xffffffffu ||
        tjDecompressHeader3(tj, buf, (unsigned long)len, &w, &h, &sub, &cs) != 0) {
        snprintf(err, n, "not a valid JPEG: %s", tjGetErrorStr2(tj));
        return -1;
    }
    if (channels == 0)
        channels = cs == TJCS_GRAY ? 1 : 3;
    int fmt = channels == 1 ? TJPF_GRAY : channels == 3 ? TJPF_RGB : TJPF_RGBA;
    if (alloc_pixels(out, h, w, channels, err, n) != 0)
        return -1;
    /* A warning (a truncated file) fails too: its pixels are not all there. */
    if (tjDecompress2(tj, buf, (unsigned long)len, out->px, w, 0, h, fmt, TJFLAG_STOPONWARNING) !=
        0) {
        snprintf(err, n, "a corrupt JPEG: %s", tjGetErrorStr2(tj));
        free(out->px);
        out->px = NULL;
        return -1;
    }
    return 0;
}

static int decode_png(const uint8_t *buf, size_t len, int channels, data_image *out, char *err,
                      size_t n)
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
        alloc_pixels(out, (int)img.height, (int)img.width, channels, err, n) != 0) {
        if (img.width > 65536 || img.height > 65536)
            snprintf(err, n, "a PNG of %u x %u pixels is too large", img.width, img.height);
        png_image_free(&img);
        return -1;
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

int data_image_decode(const uint8_t *buf, size_t len, int channels, data_image *out, char *err,
                      size_t n)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memset(out, 0, sizeof *out);
    if (len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff)
        return decode_jpeg(buf, len, channels, out, err, n);
    if (len >= 8 && !memcmp(buf, png_sig, 8))
        return decode_png(buf, len, channels, out, err, n);
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
