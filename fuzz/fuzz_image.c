/* Images (services/worker/data_image.c) from any bytes: the first byte
 * picks the channels asked for (as stored, L, RGB, RGBA) and the rows (all,
 * or a band of them as a crop's decode picks), the rest is decoded as a
 * JPEG or PNG. A decode must succeed with pixels of the size it says, or
 * fail with a reason, never read outside the bytes; a band's pixels equal
 * the same rows of a whole decode, when that succeeds too; decoded pixels
 * are then resized both ways (bilinear, nearest) to a small size. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_image.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond);                             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static volatile uint64_t sink;

/* Rows from an eighth of the image down to a quarter from its bottom, or
 * (band 3) only its last row. */
static void pick_band(void *ud, int h, int w, int *top, int *rows)
{
    (void)w;
    int band = *(const int *)ud;
    *top = band == 3 ? h - 1 : h / 8;
    *rows = band == 3 ? 1 : h - h / 4 - h / 8;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int channels[4] = {0, 1, 3, 4};
    if (size < 1)
        return 0;
    int want = channels[data[0] % 4], band = (data[0] >> 2) % 4;
    data_image im;
    char err[512] = "";
    if (data_image_decode(data + 1, size - 1, want, band ? pick_band : NULL, &band, &im, err,
                          sizeof err) != 0) {
        CHECK(err[0] != '\0' && im.px == NULL);
        return 0;
    }
    CHECK(im.px && im.h > 0 && im.w > 0 && (im.c == 1 || im.c == 3 || im.c == 4));
    CHECK(want == 0 || im.c == want);
    CHECK((uint64_t)im.h * (uint64_t)im.w * (uint64_t)im.c <= DATA_IMAGE_MAX_BYTES);
    CHECK(im.top >= 0 && im.rows > 0 && im.top + im.rows <= im.h);
    CHECK(band || (im.top == 0 && im.rows == im.h));
    size_t line = (size_t)im.w * (size_t)im.c;
    data_image all;
    if (band &&
        data_image_decode(data + 1, size - 1, want, NULL, NULL, &all, err, sizeof err) == 0) {
        CHECK(all.h == im.h && all.w == im.w && all.c == im.c);
        CHECK(!memcmp(im.px, all.px + (size_t)im.top * line, (size_t)im.rows * line));
        free(all.px);
    }
    uint64_t sum = 0;
    size_t n = (size_t)im.rows * line;
    for (size_t i = 0; i < n; i += 97)
        sum += im.px[i];
    sum += im.px[n - 1];
    uint8_t small[5 * 7 * 4];
    for (int nearest = 0; nearest < 2; nearest++) {
        data_image_resize(im.px, im.rows, im.w, im.c, small, 5, 7, nearest);
        for (size_t i = 0; i < (size_t)(5 * 7 * im.c); i++)
            sum += small[i];
    }
    sink = sum;
    free(im.px);
    return 0;
}
