/* Spilling primary copies to disk in batches, and restoring them.
 *
 * One spill writes a batch of objects back to back into a new file
 * SPILL_DIR/spill-PID-SEQ.bin (so small objects do not become one file each).
 * A file lives while any object still has its copy there; the last delete
 * removes it. A restored object keeps its disk copy, so spilling it again
 * only frees its arena block.
 *
 * The writing and reading run on I/O threads without the lock, so that
 * the event loop and the HTTP threads go on serving meanwhile; the calls
 * that wait for them answer OS_WAIT (os_store.h). Spills and restores have
 * a thread each: a get of a spilled object does not wait for a spill of
 * tens of MiB to finish (its object cannot be in that spill: an object
 * being moved is in one job only). One spill at a time: creates that need
 * room wait for it rather than spill more. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "os_store.h"

/* A disk job: a spill writes a batch of objects into one new file, a restore
 * reads one object back. The objects are `moving` meanwhile (os_store.h), so
 * the job reads and writes their bytes without the lock. */
typedef struct os_io_job {
    bool restore;
    int status; /* what the I/O gave: PRISM_STORE_OK or PRISM_STORE_IO_ERROR */
    os_object **v;
    size_t n;
    /* a spill: the objects' bytes in the arena, and the file they go to */
    struct iovec *iov;
    uint64_t seq, size;
    char *path;
    int fd;
    /* a restore: from the object's spill file into its incoming block */
    int src_fd;
    uint64_t src_off, len;
    uint8_t *dst;
    struct os_io_job *next;
} os_io_job;

static void file_remove(os_spill_file *f)
{
    close(f->fd);
    unlink(f->path);
    free(f->path);
    free(f);
}

static void job_free(os_io_job *j)
{
    free(j->v);
    free(j->iov);
    free(j->path);
    free(j);
}

/* Writes every iovec at the start of `fd`. Returns 0 or -1. */
static int write_all(int fd, struct iovec *iov, size_t n)
{
    uint64_t off = 0;
    while (n > 0) {
        ssize_t w = pwritev(fd, iov, n > IOV_MAX ? IOV_MAX : (int)n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        off += (uint64_t)w;
        size_t left = (size_t)w;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

/* The I/O itself: no lock, nothing but the job and the arena's bytes. */
static void job_run(os_io_job *j)
{
    j->status = PRISM_STORE_IO_ERROR;
    if (j->restore) {
        uint64_t got = 0;
        while (got < j->len) {
            ssize_t r = pread(j->src_fd, j->dst + got, j->len - got, (off_t)(j->src_off + got));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                return;
            got += (uint64_t)r;
        }
        j->status = PRISM_STORE_OK;
        return;
    }
    j->fd = open(j->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (j->fd < 0)
        return;
    if (write_all(j->fd, j->iov, j->n) != 0) {
        close(j->fd);
        unlink(j->path);
        j->fd = -1;
        return;
    }
    j->status = PRISM_STORE_OK;
}

/* A primary copy that has a disk copy gives its block back. */
static void to_disk(os_store *s, os_object *o)
{
    os_alloc_put(&s->alloc, o->block);
    o->block = NULL;
    s->spilled_now++;
    s->spilled_now_bytes += o->data_size + o->meta_size;
    os_lru_update(s, o);
    if (s->on_event)
        s->on_event(s->ud, OS_EV_SPILLED, o);
}

static void finish_spill(os_store *s, os_io_job *j)
{
    s->spilling = false;
    os_spill_file *f = NULL;
    if (j->status == PRISM_STORE_OK && !(f = calloc(1, sizeof *f))) {
        close(j->fd);
        unlink(j->path);
    }
    if (f) {
        *f = (os_spill_file){.seq = j->seq, .fd = j->fd, .path = j->path, .size = j->size};
        j->path = NULL;
        f->next = s->spill_files;
        if (f->next)
            f->next->prev = f;
        s->spill_files = f;
        s->spill_file_count++;
    } else {
        s->spill_failed = true;
    }
    for (size_t i = 0; i < j->n; i++) {
        os_object *o = j->v[i];
        o->moving = false;
        if (f) {
            o->spill = f;
            f->live++;
            s->spills++;
            s->spilled_bytes_total += o->data_size + o->meta_size;
        }
        if (os_moved_deleted(s, o))
            continue;
        if (f && !o->readers) /* a get meanwhile keeps it in memory, with its disk copy */
            to_disk(s, o);
        else
            os_lru_update(s, o);
    }
}

static void finish_restore(os_store *s, os_io_job *j)
{
    os_object *o = j->v[0];
    o->moving = false;
    if (j->status == PRISM_STORE_OK) {
        o->block = o->incoming;
        os_spill_forget(s, o);
        s->restores++;
        s->restored_bytes_total += o->data_size + o->meta_size;
    } else {
        os_alloc_put(&s->alloc, o->incoming);
        o->restore_failed = true;
    }
    o->incoming = NULL;
    if (!os_moved_deleted(s, o))
        os_lru_update(s, o);
}

/* Applies a job's outcome to the store, under the lock, and frees it. */
static void job_finish(os_store *s, os_io_job *j)
{
    s->io_errors += j->status != PRISM_STORE_OK;
    if (j->restore)
        finish_restore(s, j);
    else
        finish_spill(s, j);
    job_free(j);
}

static void *io_main(void *arg)
{
    os_io_queue *q = arg;
    os_store *s = q->s;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while ((!q->head || (s->hold_spills && q == &s->io[OS_IO_SPILLS])) && !s->io_inline)
            pthread_cond_wait(&q->cv, &s->mu);
        os_io_job *j = q->head;
        if (!j) /* stopping, and every job is done */
            break;
        if (!(q->head = j->next))
            q->tail = NULL;
        pthread_mutex_unlock(&s->mu);
        job_run(j);
        pthread_mutex_lock(&s->mu);
        job_finish(s, j);
        s->io_pending--;
        if (s->on_moved)
            s->on_moved(s->ud);
        pthread_cond_broadcast(&s->moved);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Runs `j` on its I/O thread (OS_WAIT) or, inline, here: then its status. */
static int submit(os_store *s, os_io_job *j)
{
    os_io_queue *q = &s->io[j->restore ? OS_IO_RESTORES : OS_IO_SPILLS];
    if (!s->io_inline && !q->started) {
        q->started = pthread_create(&q->thread, NULL, io_main, q) == 0;
        if (!q->started)
            s->io_inline = true; /* no thread: the I/O runs where it is asked for */
    }
    if (s->io_inline) {
        job_run(j);
        int status = j->status;
        job_finish(s, j);
        return status;
    }
    j->next = NULL;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    s->io_pending++;
    pthread_cond_signal(&q->cv);
    return OS_WAIT;
}

void os_store_stop_io(os_store *s)
{
    bool started[2];
    pthread_mutex_lock(&s->mu);
    s->io_inline = true;
    for (int k = 0; k < 2; k++) {
        started[k] = s->io[k].started;
        s->io[k].started = false;
        pthread_cond_signal(&s->io[k].cv);
    }
    pthread_mutex_unlock(&s->mu);
    for (int k = 0; k < 2; k++)
        if (started[k])
            pthread_join(s->io[k].thread, NULL);
}

/* A spill job for `v` (its objects now moving), or NULL when out of memory. */
static os_io_job *spill_job(os_store *s, os_object **v, size_t n)
{
    os_io_job *j = calloc(1, sizeof *j);
    if (!j || !(j->iov = calloc(n, sizeof *j->iov))) {
        free(j);
        return NULL;
    }
    j->seq = s->spill_seq + 1;
    if (asprintf(&j->path, "%s/spill-%ld-%llu.bin", s->spill_dir, (long)getpid(),
                 (unsigned long long)j->seq) < 0) {
        j->path = NULL;
        job_free(j);
        return NULL;
    }
    s->spill_seq++;
    j->v = v;
    j->n = n;
    j->fd = -1;
    for (size_t i = 0; i < n; i++) {
        os_object *o = v[i];
        j->iov[i] = (struct iovec){os_data(s, o), o->data_size + o->meta_size};
        o->spill_off = j->size;
        j->size += j->iov[i].iov_len;
    }
    return j;
}

int os_spill_some(os_store *s, uint64_t need)
{
    uint64_t target = need > s->spill_batch ? need : s->spill_batch, freed = 0;
    size_t n = 0, cap = 0;
    bool now = false;
    os_object **v = NULL, *next;
    for (os_object *o = s->primary.head; o && freed < target; o = next) {
        next = o->lru_next;
        freed += o->block->size;
        if (o->spill) { /* already on disk: only its block goes */
            to_disk(s, o);
            now = true;
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            os_object **nv = realloc(v, cap * sizeof *v);
            if (!nv)
                break;
            v = nv;
        }
        v[n++] = o;
    }
    os_io_job *j = n ? spill_job(s, v, n) : NULL;
    if (!j) {
        free(v);
        return now ? PRISM_STORE_OK : PRISM_STORE_ERROR;
    }
    for (size_t i = 0; i < n; i++) {
        v[i]->moving = true;
        os_lru_update(s, v[i]);
    }
    s->spilling = true;
    int r = submit(s, j);
    if (r == PRISM_STORE_IO_ERROR)
        s->spill_failed = false; /* told to this caller now */
    return now && r == OS_WAIT ? PRISM_STORE_OK : r;
}

int os_spill_restore(os_store *s, os_object *o, os_block *b)
{
    os_io_job *j = calloc(1, sizeof *j);
    if (!j || !(j->v = malloc(sizeof *j->v))) {
        free(j);
        os_alloc_put(&s->alloc, b);
        return PRISM_STORE_ERROR;
    }
    j->restore = true;
    j->v[0] = o;
    j->n = 1;
    j->src_fd = o->spill->fd;
    j->src_off = o->spill_off;
    j->len = o->data_size + o->meta_size;
    j->dst = s->arena + b->off;
    o->incoming = b;
    o->moving = true;
    int r = submit(s, j);
    if (r == PRISM_STORE_IO_ERROR)
        o->restore_failed = false; /* told to this get now */
    return r;
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
