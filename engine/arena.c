/* arena.c: bump allocation from one block sized up front. */
#include "engine/arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engine/error.h"

/* Above this, arenas are mmap'd: page-aligned, zero pages until touched, returned whole. */
#define ARENA_MMAP_MIN ((size_t)1 << 20)

static int arena_map(struct eng_arena *a, size_t size, int flags)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
    if (p == MAP_FAILED)
        return eng_error("arena '%s': cannot map %zu bytes", a->name, size);
    a->base = p;
    a->size = size;
    a->mapped = 1;
    return 0;
}

int eng_arena_init(struct eng_arena *a, const char *name, size_t size)
{
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", name ? name : "arena");
    if (size == 0)
        return 0;
    size = (size + ENG_ARENA_ALIGN - 1) & ~(size_t)(ENG_ARENA_ALIGN - 1);
    if (size >= ARENA_MMAP_MIN)
        return arena_map(a, size, 0);
    a->base = aligned_alloc(ENG_ARENA_ALIGN, size);
    if (!a->base)
        return eng_error("arena '%s': cannot allocate %zu bytes", a->name, size);
    a->size = size;
    return 0;
}

int eng_arena_init_reserve(struct eng_arena *a, const char *name, size_t size)
{
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", name ? name : "arena");
    return arena_map(a, size ? size : ENG_ARENA_ALIGN, MAP_NORESERVE);
}

void eng_arena_free(struct eng_arena *a)
{
    if (a->mapped)
        munmap(a->base, a->size);
    else
        free(a->base);
    a->base = NULL;
    a->mapped = 0;
    a->size = a->used = 0;
}

void *eng_arena_alloc(struct eng_arena *a, size_t bytes)
{
    size_t start = (a->used + ENG_ARENA_ALIGN - 1) & ~(size_t)(ENG_ARENA_ALIGN - 1);
    size_t end = start + bytes;
    if (end < start) {
        eng_error("arena '%s': request of %zu bytes overflows", a->name, bytes);
        return NULL;
    }
    if (end > a->peak)
        a->peak = end;
    if (end > a->size) {
        eng_error("arena '%s' too small: need %zu bytes in all, have %zu (request of %zu)",
                  a->name, end, a->size, bytes);
        return NULL;
    }
    a->used = end;
    return a->base + start;
}

float *eng_arena_floats(struct eng_arena *a, size_t n)
{
    if (n > SIZE_MAX / sizeof(float)) {
        eng_error("arena '%s': request of %zu floats overflows", a->name, n);
        return NULL;
    }
    return eng_arena_alloc(a, n * sizeof(float));
}

size_t eng_arena_mark(const struct eng_arena *a)
{
    return a->used;
}

void eng_arena_rewind(struct eng_arena *a, size_t mark)
{
    if (mark < a->used)
        a->used = mark;
}

void eng_arena_reset(struct eng_arena *a)
{
    a->used = 0;
}
