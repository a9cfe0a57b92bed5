#ifndef CNN_KERNELS_TARGETS_H
#define CNN_KERNELS_TARGETS_H

/* Built for AVX2 + FMA (x86-64-v3) and for the baseline; the loader picks one by the CPU
   (an ifunc), so one binary runs everywhere and uses the wider vectors where they exist. */
#define BOTH_TARGETS __attribute__((target_clones("arch=x86-64-v3", "default")))

#endif
