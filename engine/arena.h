/* Arenas: one bump allocator per context, sized up front, so a forward pass never mallocs.
 *
 *   struct eng_arena a;
 *   if (eng_arena_init(&a, "worker0.act", 64 << 20) < 0) die(eng_errmsg());
 *   float *x = eng_arena_alloc(&a, n * sizeof(float));   // NULL + message when full
 *   size_t mark = eng_arena_mark(&a);  ...  eng_arena_rewind(&a, mark);
 *   eng_arena_free(&a);
 *
 * Every allocation is 64-byte aligned (a cache line; what AVX-512 loads like). `peak` records
 * the high-water mark so a model can size its arena exactly after one dry run.
 */
#ifndef SALIENT_ENGINE_ARENA_H
#define SALIENT_ENGINE_ARENA_H

#include <stddef.h>

#define ENG_ARENA_ALIGN 64

struct eng_arena {
    char name[64];
    char *base;  /* owned; NULL for a measuring arena */
    int mapped;  /* base came from mmap (large arenas): pages are committed when first touched */
    size_t size; /* bytes available */
    size_t used; /* bytes handed out, including alignment */
    size_t peak; /* largest `used` seen */
};

/* Allocate size bytes for the arena. size 0 makes a measuring arena: allocations fail, but
 * `peak` still records what would have been needed. Returns 0, or -1 with a message. */
int eng_arena_init(struct eng_arena *a, const char *name, size_t size);

/* Reserve size bytes of address space without committing memory: pages are committed only
 * when a caller touches them. For one dry run that measures `peak` on a real forward pass;
 * size it generously (gigabytes cost nothing until used). Returns 0 or -1 with a message. */
int eng_arena_init_reserve(struct eng_arena *a, const char *name, size_t size);

/* Release the arena's memory; every pointer it handed out becomes invalid. */
void eng_arena_free(struct eng_arena *a);

/* bytes of 64-byte aligned memory, uninitialised, valid until the arena is reset, rewound
 * past it or freed. NULL with a message naming the arena, the request and its size when it
 * does not fit. */
void *eng_arena_alloc(struct eng_arena *a, size_t bytes);

/* Same, as floats. */
float *eng_arena_floats(struct eng_arena *a, size_t n);

size_t eng_arena_mark(const struct eng_arena *a);
/* Free everything allocated after mark. */
void eng_arena_rewind(struct eng_arena *a, size_t mark);
/* Free everything. */
void eng_arena_reset(struct eng_arena *a);

#endif
