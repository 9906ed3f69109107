/* The allocator of the object store's arena: hands out aligned ranges
 * [offset, offset + size) of a region of `capacity` bytes. It never touches the
 * region itself (the bookkeeping lives on the heap), so clients that write
 * into the shared arena cannot corrupt it.
 *
 * Free ranges sit in segregated lists by power-of-two size class (a bitmap
 * finds the first non-empty class in O(1)) and are coalesced with their
 * neighbours on free, so a fully freed arena is one range again. Not
 * thread-safe: the store calls it under its lock. */
#ifndef OS_ALLOC_H
#define OS_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OS_ALLOC_ALIGN 64u
#define OS_ALLOC_BINS 64

typedef struct os_block {
    uint64_t off;
    uint64_t size;                  /* a multiple of OS_ALLOC_ALIGN */
    struct os_block *prev, *next;   /* neighbours in address order */
    struct os_block *fprev, *fnext; /* free-list links, while free */
    bool free;
} os_block;

typedef struct os_alloc {
    uint64_t capacity;
    uint64_t used;
    os_block *head; /* lowest address */
    os_block *bins[OS_ALLOC_BINS];
    uint64_t nonempty; /* bit i set when bins[i] has a block */
    size_t nblocks;
} os_alloc;

/* `capacity` is rounded down to the alignment. Returns 0, or -1 when out of memory. */
int os_alloc_init(os_alloc *a, uint64_t capacity);
void os_alloc_destroy(os_alloc *a);
/* A block of at least `size` bytes (0 counts as 1), or NULL when no free range fits. */
os_block *os_alloc_get(os_alloc *a, uint64_t size);
/* Gives a block back; it may be merged and freed, so do not use it afterwards. */
void os_alloc_put(os_alloc *a, os_block *b);
/* The size a request of `size` bytes occupies. */
uint64_t os_alloc_rounded(uint64_t size);
/* Checks every invariant (coverage, order, coalescing, bins, `used`).
 * Returns 0, or a negative number naming the first that failed. For tests. */
int os_alloc_check(const os_alloc *a);

#endif
