/* Images for datasets: JPEG (libjpeg-turbo) and PNG (libpng) decoded to
 * 8-bit pixels, resized, cropped and flipped (docs/datasets.md#reads). The
 * bytes decoded come from files and blocks: nothing in them is trusted. */
#ifndef PRISM_WORKER_DATA_IMAGE_H
#define PRISM_WORKER_DATA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* Pixels decoded are at most this many bytes (h * w * channels): a small
 * file may not claim a huge image. */
#define DATA_IMAGE_MAX_BYTES (1u << 28)

/* An image of h rows of w pixels of c channels (1: L, 3: RGB, 4: RGBA),
 * each a byte, row-major: `px` (owned: free) holds its rows [top, top +
 * rows), all of them unless a decode was told otherwise. */
typedef struct data_image {
    int h, w, c;
    int top, rows;
    uint8_t *px;
} data_image;

/* Told an image's size (h x w) before its pixels are decoded, sets the
 * rows wanted: [*top, *top + *rows) (left as they are, or out of the
 * image: every row). */
typedef void (*data_rows_fn)(void *ud, int h, int w, int *top, int *rows);

/* The channels of a mode: "L" 1, "RGB" 3, "RGBA" 4; NULL (as stored) 0;
 * -1 for any other name. */
int data_image_channels(const char *mode);

/* Decodes a JPEG or PNG (told apart by their signatures) to `channels`
 * channels (0: as stored: L or RGB for a JPEG; L, RGB or RGBA for a PNG,
 * grey with alpha as RGBA). With `pick` (NULL: every row), called once
 * the size is read, a JPEG's decode covers only the rows it picks: the
 * rows above are entropy-decoded and dropped, the rows below not read (a
 * crop's decode: damage there goes unseen). A PNG's has every row. The
 * pixels equal the same rows of a whole decode. Returns 0, or -1 with
 * `err` saying why. */
int data_image_decode(const uint8_t *buf, size_t len, int channels, data_rows_fn pick, void *ud,
                      data_image *out, char *err, size_t n);

/* `in` resized to h x w (bilinear, or nearest neighbour) into `out`, which
 * holds h * w * in->c bytes. */
void data_image_resize(const uint8_t *in, int ih, int iw, int c, uint8_t *out, int h, int w,
                       int nearest);

#endif
