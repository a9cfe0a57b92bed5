#define _GNU_SOURCE
#include "AllocationCounter.h"
#include <execinfo.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static atomic_int counting;
static atomic_long allocations;

/* The loaded segments of OpenBLAS and oneDNN. OpenBLAS's SkylakeX and Cooperlake kernels
   allocate small buffers inside sgemm (a warm ResNet-18 step: 2 allocations; GoogLeNet: 35),
   Prescott and Haswell do not; oneDNN 2.6 allocates in every primitive execution. Those are
   the libraries', not ours, so calls from them are not counted. */
#define MAX_SEGMENTS 16
static uintptr_t segment_start[MAX_SEGMENTS], segment_end[MAX_SEGMENTS];
static int segments;

static int note_libraries(struct dl_phdr_info *info, size_t size, void *unused) {
    (void)size; (void)unused;
    if (!info->dlpi_name || (!strstr(info->dlpi_name, "openblas") && !strstr(info->dlpi_name, "libdnnl"))) return 0;
    for (int i = 0; i < info->dlpi_phnum && segments < MAX_SEGMENTS; i++) {
        const ElfW(Phdr) *p = &info->dlpi_phdr[i];
        if (p->p_type != PT_LOAD) continue;
        segment_start[segments] = info->dlpi_addr + p->p_vaddr;
        segment_end[segments] = segment_start[segments] + p->p_memsz;
        segments++;
    }
    return 0;
}

static inline int from_libraries(void *caller) {
    uintptr_t a = (uintptr_t)caller;
    for (int i = 0; i < segments; i++)
        if (a >= segment_start[i] && a < segment_end[i]) return 1;
    return 0;
}

/* Whether any of the innermost frames is inside those libraries: oneDNN allocates through
   C++'s operator new, so the direct caller of malloc is libstdc++. The unwinder may itself
   allocate: a thread inside it is not counted. */
#define FRAMES 8
static _Thread_local int unwinding;

/* Only the thread that started counting and the OpenMP team its parallel loops run on are
   counted: a thread of Foundation or Dispatch left over from an earlier test (a child
   process's exit being reaped, say) is not the training step's. omp_get_level reads the
   calling thread's OpenMP state (0 outside a parallel region) and allocates nothing. */
extern int omp_get_level(void);
static pthread_t counting_thread;

static int on_counted_thread(void) {
    return pthread_equal(pthread_self(), counting_thread) || omp_get_level() > 0;
}

static void count(void *caller) {
    if (!atomic_load_explicit(&counting, memory_order_relaxed) || unwinding || from_libraries(caller)) return;
    if (!on_counted_thread()) return;
    unwinding = 1;
    void *frames[FRAMES];
    int depth = backtrace(frames, FRAMES);
    unwinding = 0;
    for (int i = 0; i < depth; i++)
        if (from_libraries(frames[i])) return;
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
}

void *malloc(size_t size) { count(__builtin_return_address(0)); return __libc_malloc(size); }
void *calloc(size_t n, size_t size) { count(__builtin_return_address(0)); return __libc_calloc(n, size); }
void *realloc(void *p, size_t size) { count(__builtin_return_address(0)); return __libc_realloc(p, size); }
void free(void *p) { __libc_free(p); }

void allocation_counter_start(void) {
    if (segments == 0) {
        dl_iterate_phdr(note_libraries, NULL);
        void *frames[FRAMES];
        backtrace(frames, FRAMES);  /* loads the unwinder before counting starts */
    }
    counting_thread = pthread_self();
    atomic_store(&allocations, 0);
    atomic_store(&counting, 1);
}

long allocation_counter_stop(void) {
    atomic_store(&counting, 0);
    return atomic_load(&allocations);
}
