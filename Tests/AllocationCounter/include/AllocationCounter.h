// Counts calls to malloc, calloc and realloc made by this process while counting is on.
// The test executable defines malloc & co. itself (forwarding to glibc's __libc_*
// entry points), which on Linux replaces the allocator for every library it loads.
#ifndef CNN_TRAIN_ALLOCATION_COUNTER_H
#define CNN_TRAIN_ALLOCATION_COUNTER_H

void allocation_counter_start(void);
/// Stops counting and returns the number of allocations since `allocation_counter_start`.
long allocation_counter_stop(void);

#endif
