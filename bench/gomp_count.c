/* Counts OpenMP parallel regions (libgomp's GOMP_parallel, which torch, oneDNN and MKL call) in a process:
 *   gcc -O2 -shared -fPIC -o /tmp/gomp_count.so bench/gomp_count.c -ldl
 *   LD_PRELOAD=/tmp/gomp_count.so python bench/render_counts.py ...   (reads gomp_regions() through ctypes) */
#define _GNU_SOURCE
#include <dlfcn.h>

static unsigned long regions;
typedef void (*parallel_fn)(void (*)(void *), void *, unsigned, unsigned);

unsigned long gomp_regions(void) { return __atomic_load_n(&regions, __ATOMIC_RELAXED); }

void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags) {
    static parallel_fn real;
    if (!real)
        real = (parallel_fn)dlsym(RTLD_NEXT, "GOMP_parallel");
    __atomic_add_fetch(&regions, 1, __ATOMIC_RELAXED);
    real(fn, data, num_threads, flags);
}
