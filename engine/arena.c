/* arena.c: bump allocation from one block sized up front. */
#include "engine/arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"

int eng_arena_init(struct eng_arena *a, const char *name, size_t size)
{
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", name ? name : "arena");
    if (size == 0)
        return 0;
    size = (size + ENG_ARENA_ALIGN - 1) & ~(size_t)(ENG_ARENA_ALIGN - 1);
    a->base = aligned_alloc(ENG_ARENA_ALIGN, size);
    if (!a->base)
        return eng_error("arena '%s': cannot allocate %zu bytes", a->name, size);
    a->size = size;
    return 0;
}

void eng_arena_free(struct eng_arena *a)
{
    free(a->base);
    a->base = NULL;
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
