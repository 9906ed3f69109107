/* Spilling primary copies to disk in batches, and restoring them.
 *
 * One spill writes a batch of objects back to back into a new file
 * SPILL_DIR/spill-PID-SEQ.bin (so small objects do not become one file each).
 * A file lives while any object still has its copy there; the last delete
 * removes it. A restored object keeps its disk copy, so spilling it again
 * only frees its arena block. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "os_store.h"

#define IOV_BATCH 512

static os_spill_file *file_create(os_store *s)
{
    os_spill_file *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->seq = ++s->spill_seq;
    if (asprintf(&f->path, "%s/spill-%ld-%llu.bin", s->spill_dir, (long)getpid(),
                 (unsigned long long)f->seq) < 0) {
        free(f);
        return NULL;
    }
    f->fd = open(f->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (f->fd < 0) {
        free(f->path);
        free(f);
        return NULL;
    }
    return f;
}

static void file_remove(os_spill_file *f)
{
    close(f->fd);
    unlink(f->path);
    free(f->path);
    free(f);
}

/* Writes the objects without a disk copy, back to back. Returns 0 or -1. */
static int write_batch(os_store *s, os_spill_file *f, os_object **v, size_t n)
{
    struct iovec iov[IOV_BATCH];
    uint64_t off = 0;
    size_t i = 0;
    while (i < n) {
        int k = 0;
        uint64_t start = off;
        for (; i < n && k < IOV_BATCH; i++) {
            if (v[i]->spill)
                continue;
            iov[k].iov_base = os_data(s, v[i]);
            iov[k].iov_len = v[i]->data_size + v[i]->meta_size;
            v[i]->spill_off = off;
            off += iov[k].iov_len;
            k++;
        }
        struct iovec *p = iov;
        while (k > 0) {
            ssize_t w = pwritev(f->fd, p, k > IOV_MAX ? IOV_MAX : k, (off_t)start);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return -1;
            start += (uint64_t)w;
            size_t left = (size_t)w;
            while (k > 0 && left >= p->iov_len) {
                left -= p->iov_len;
                p++;
                k--;
            }
            if (k > 0) {
                p->iov_base = (char *)p->iov_base + left;
                p->iov_len -= left;
            }
        }
    }
    f->size = off;
    return 0;
}

int os_spill_some(os_store *s, uint64_t need)
{
    uint64_t target = need > s->spill_batch ? need : s->spill_batch, freed = 0;
    size_t n = 0, cap = 0, fresh = 0;
    os_object **v = NULL;
    for (os_object *o = s->primary.head; o && freed < target; o = o->lru_next) {
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            os_object **nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                free(v);
                return PRISM_STORE_ERROR;
            }
            v = nv;
        }
        v[n++] = o;
        freed += o->block->size;
        fresh += !o->spill;
    }
    os_spill_file *f = NULL;
    if (fresh) {
        if (!(f = file_create(s)) || write_batch(s, f, v, n) != 0) {
            if (f)
                file_remove(f);
            free(v);
            return PRISM_STORE_IO_ERROR;
        }
        f->next = s->spill_files;
        if (f->next)
            f->next->prev = f;
        s->spill_files = f;
        s->spill_file_count++;
    }
    for (size_t i = 0; i < n; i++) {
        os_object *o = v[i];
        if (!o->spill) {
            o->spill = f;
            f->live++;
            s->spills++;
            s->spilled_bytes_total += o->data_size + o->meta_size;
        }
        os_alloc_put(&s->alloc, o->block);
        o->block = NULL;
        s->spilled_now++;
        s->spilled_now_bytes += o->data_size + o->meta_size;
        os_lru_update(s, o);
        if (s->on_event)
            s->on_event(s->ud, OS_EV_SPILLED, o);
    }
    free(v);
    return PRISM_STORE_OK;
}

int os_spill_restore(os_store *s, os_object *o)
{
    uint8_t *p = os_data(s, o);
    uint64_t len = o->data_size + o->meta_size, got = 0;
    while (got < len) {
        ssize_t r = pread(o->spill->fd, p + got, len - got, (off_t)(o->spill_off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return PRISM_STORE_IO_ERROR;
        got += (uint64_t)r;
    }
    return PRISM_STORE_OK;
}

void os_spill_drop(os_store *s, os_object *o)
{
    os_spill_file *f = o->spill;
    o->spill = NULL;
    if (--f->live)
        return;
    if (f->prev)
        f->prev->next = f->next;
    else
        s->spill_files = f->next;
    if (f->next)
        f->next->prev = f->prev;
    s->spill_file_count--;
    file_remove(f);
}

void os_spill_forget(os_store *s, const os_object *o)
{
    s->spilled_now--;
    s->spilled_now_bytes -= o->data_size + o->meta_size;
}

void os_spill_cleanup(os_store *s)
{
    while (s->spill_files) {
        os_spill_file *f = s->spill_files;
        s->spill_files = f->next;
        file_remove(f);
    }
    s->spill_file_count = 0;
}

void os_spill_remove_stale(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        long pid;
        unsigned long long seq;
        char tail[8];
        if (sscanf(e->d_name, "spill-%ld-%llu.%7s", &pid, &seq, tail) != 3 ||
            strcmp(tail, "bin") != 0 || pid <= 0 || pid == (long)getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path)
            unlink(path);
    }
    closedir(d);
}
