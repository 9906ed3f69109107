/* Writes a test image: image_writer jpeg|png OUT WIDTH HEIGHT CHANNELS.
 * Pixel (x, y) is a gradient, so that decodes, crops, flips and resizes can
 * be checked by value: channel 0 = x * 255 / (w - 1), channel 1 =
 * y * 255 / (h - 1), channel 2 = 128, channel 3 (alpha) = 255; one channel:
 * channel 0's. JPEGs at quality 95. */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

static unsigned char value(int x, int y, int w, int h, int k)
{
    switch (k) {
    case 0: return (unsigned char)(w > 1 ? x * 255 / (w - 1) : 0);
    case 1: return (unsigned char)(h > 1 ? y * 255 / (h - 1) : 0);
    case 2: return 128;
    default: return 255;
    }
}

static int write_jpeg(const char *out, const unsigned char *px, int w, int h, int c)
{
    tjhandle tj = tjInitCompress();
    unsigned char *jpeg = NULL;
    unsigned long len = 0;
    int fmt = c == 1 ? TJPF_GRAY : c == 3 ? TJPF_RGB : TJPF_RGBA;
    int rc = tj && tjCompress2(tj, px, w, 0, h, fmt, &jpeg, &len, c == 1 ? TJSAMP_GRAY : TJSAMP_444,
                               95, 0) == 0
                 ? 0
                 : -1;
    FILE *f = rc == 0 ? fopen(out, "wb") : NULL;
    if (!f || fwrite(jpeg, 1, len, f) != len)
        rc = -1;
    if (f && fclose(f) != 0)
        rc = -1;
    tjFree(jpeg);
    if (tj)
        tjDestroy(tj);
    return rc;
}

static int write_png(const char *out, const unsigned char *px, int w, int h, int c)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)w;
    img.height = (png_uint_32)h;
    img.format = c == 1 ? PNG_FORMAT_GRAY : c == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA;
    return png_image_write_to_file(&img, out, 0, px, 0, NULL) ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: image_writer jpeg|png OUT WIDTH HEIGHT CHANNELS\n");
        return 2;
    }
    int w = atoi(argv[3]), h = atoi(argv[4]), c = atoi(argv[5]);
    if (w < 1 || h < 1 || w > 8192 || h > 8192 || (c != 1 && c != 3 && c != 4)) {
        fprintf(stderr, "image_writer: bad size or channels\n");
        return 2;
    }
    unsigned char *px = malloc((size_t)w * (size_t)h * (size_t)c);
    if (!px)
        return 1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++)
                px[((size_t)y * (size_t)w + (size_t)x) * (size_t)c + (size_t)k] =
                    value(x, y, w, h, k);
    int rc = !strcmp(argv[1], "png") ? write_png(argv[2], px, w, h, c)
                                     : write_jpeg(argv[2], px, w, h, c);
    free(px);
    if (rc != 0)
        fprintf(stderr, "image_writer: cannot write %s\n", argv[2]);
    return rc == 0 ? 0 : 1;
}
