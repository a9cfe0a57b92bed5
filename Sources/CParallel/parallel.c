#include "CParallel.h"

// libgomp's entry points, as compiled OpenMP code calls them: the C compiler of the Swift
// toolchain has no libgomp omp.h, and sharing oneDNN's runtime keeps one pool of threads.
extern void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
extern int omp_get_thread_num(void);
extern int omp_get_num_threads(void);
extern int omp_get_max_threads(void);
extern void omp_set_num_threads(int);

struct loop {
    long count;
    cnn_range_body body;
    void *context;
};

static void run_share(void *data) {
    const struct loop *loop = data;
    long thread = omp_get_thread_num(), threads = omp_get_num_threads();
    long begin = loop->count * thread / threads, end = loop->count * (thread + 1) / threads;
    if (begin < end) loop->body(loop->context, begin, end);
}

void cnn_parallel_for(long count, long grain, cnn_range_body body, void *context) {
    long threads = omp_get_max_threads();
    long useful = grain > 0 ? count / grain : count;
    if (threads > useful) threads = useful;
    if (threads <= 1) {
        if (count > 0) body(context, 0, count);
        return;
    }
    struct loop loop = {count, body, context};
    GOMP_parallel(run_share, &loop, (unsigned)threads, 0);
}

int cnn_parallel_threads(void) { return omp_get_max_threads(); }

void cnn_parallel_set_threads(int threads) { omp_set_num_threads(threads); }

int cnn_parallel_thread_index(void) { return omp_get_thread_num(); }
