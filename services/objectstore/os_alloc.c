#include "os_alloc.h"

#include <stdlib.h>

/* A request rounded to its class: the exact class is searched only this far
 * before a larger class (where any block fits) is taken. */
#define EXACT_SCAN 32

static int bin_of(uint64_t size) { return 63 - __builtin_clzll(size); }

uint64_t os_alloc_rounded(uint64_t size)
{
    if (size == 0)
        size = 1;
    if (size > UINT64_MAX - OS_ALLOC_ALIGN)
        return 0;
    return (size + OS_ALLOC_ALIGN - 1) & ~(uint64_t)(OS_ALLOC_ALIGN - 1);
}

static void bin_insert(os_alloc *a, os_block *b)
{
    int i = bin_of(b->size);
    b->free = true;
    b->fprev = NULL;
    b->fnext = a->bins[i];
    if (b->fnext)
        b->fnext->fprev = b;
    a->bins[i] = b;
    a->nonempty |= 1ull << i;
}

static void bin_remove(os_alloc *a, os_block *b)
{
    int i = bin_of(b->size);
    if (b->fprev)
        b->fprev->fnext = b->fnext;
    else
        a->bins[i] = b->fnext;
    if (b->fnext)
        b->fnext->fprev = b->fprev;
    if (!a->bins[i])
        a->nonempty &= ~(1ull << i);
    b->free = false;
    b->fprev = b->fnext = NULL;
}

int os_alloc_init(os_alloc *a, uint64_t capacity)
{
    *a = (os_alloc){.capacity = capacity & ~(uint64_t)(OS_ALLOC_ALIGN - 1)};
    if (a->capacity == 0)
        return 0;
    os_block *b = calloc(1, sizeof *b);
    if (!b)
        return -1;
    b->size = a->capacity;
    a->head = b;
    a->nblocks = 1;
    bin_insert(a, b);
    return 0;
}

void os_alloc_destroy(os_alloc *a)
{
    os_block *b = a->head;
    while (b) {
        os_block *next = b->next;
        free(b);
        b = next;
    }
    *a = (os_alloc){0};
}

static os_block *find_free(os_alloc *a, uint64_t size)
{
    int i = bin_of(size);
    os_block *b = a->bins[i];
    for (int n = 0; b && n < EXACT_SCAN; n++, b = b->fnext)
        if (b->size >= size)
            return b;
    uint64_t larger = i + 1 < OS_ALLOC_BINS ? a->nonempty & (~0ull << (i + 1)) : 0;
    if (larger)
        return a->bins[__builtin_ctzll(larger)];
    for (; b; b = b->fnext)
        if (b->size >= size)
            return b;
    return NULL;
}

os_block *os_alloc_get(os_alloc *a, uint64_t size)
{
    size = os_alloc_rounded(size);
    if (size == 0 || size > a->capacity - a->used)
        return NULL;
    os_block *b = find_free(a, size);
    if (!b)
        return NULL;
    bin_remove(a, b);
    if (b->size > size) {
        os_block *rest = calloc(1, sizeof *rest);
        if (rest) { /* without memory for the split, hand out the whole block */
            rest->off = b->off + size;
            rest->size = b->size - size;
            rest->prev = b;
            rest->next = b->next;
            if (b->next)
                b->next->prev = rest;
            b->next = rest;
            b->size = size;
            a->nblocks++;
            bin_insert(a, rest);
        }
    }
    a->used += b->size;
    return b;
}

/* Merges `b` into its free predecessor `p` and frees `b`. */
static os_block *merge(os_alloc *a, os_block *p, os_block *b)
{
    p->size += b->size;
    p->next = b->next;
    if (b->next)
        b->next->prev = p;
    free(b);
    a->nblocks--;
    return p;
}

void os_alloc_put(os_alloc *a, os_block *b)
{
    a->used -= b->size;
    if (b->prev && b->prev->free) {
        bin_remove(a, b->prev);
        b = merge(a, b->prev, b);
    }
    if (b->next && b->next->free) {
        bin_remove(a, b->next);
        b = merge(a, b, b->next);
    }
    bin_insert(a, b);
}

int os_alloc_check(const os_alloc *a)
{
    uint64_t off = 0, used = 0;
    size_t n = 0, nfree = 0;
    for (const os_block *b = a->head; b; b = b->next, n++) {
        if (b->off != off || b->size == 0 || b->size % OS_ALLOC_ALIGN)
            return -1; /* gap, overlap or bad size */
        if (b->next && b->next->prev != b)
            return -2;
        if (b->free && b->next && b->next->free)
            return -3; /* two free neighbours not coalesced */
        if (b->free)
            nfree++;
        else
            used += b->size;
        off += b->size;
    }
    if (off != a->capacity || used != a->used || n != a->nblocks)
        return -4;
    size_t inbins = 0;
    for (int i = 0; i < OS_ALLOC_BINS; i++) {
        if (!!a->bins[i] != !!(a->nonempty & (1ull << i)))
            return -5;
        for (const os_block *b = a->bins[i]; b; b = b->fnext, inbins++)
            if (!b->free || bin_of(b->size) != i || (b->fnext && b->fnext->fprev != b))
                return -6;
    }
    return inbins == nfree ? 0 : -7;
}
