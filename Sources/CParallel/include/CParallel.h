#ifndef CNN_PARALLEL_H
#define CNN_PARALLEL_H

/// The body of a parallel loop: handles indices [begin, end) with `context`.
typedef void (*cnn_range_body)(void *context, long begin, long end);

/// Runs `body` over [0, count) split into one contiguous range per thread of the OpenMP
/// team oneDNN uses (libgomp), at most count / grain threads. The split depends only on
/// `count` and the thread count. Runs on the calling thread alone when one thread suffices.
void cnn_parallel_for(long count, long grain, cnn_range_body body, void *context);

/// The threads a parallel loop started from this thread uses (omp_get_max_threads).
int cnn_parallel_threads(void);
/// Sets them (omp_set_num_threads): oneDNN's primitives use the same team.
void cnn_parallel_set_threads(int threads);
/// Inside a loop body: which of the team's threads runs it, from 0 (omp_get_thread_num).
int cnn_parallel_thread_index(void);

#endif
