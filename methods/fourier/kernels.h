// What the Fourier network's CPU kernels (_ring_native.cpp, _mix_native.cpp,
// _moments_native.cpp) share: the choice of instruction set, their entry points, and the
// drivers that run one call's tasks.
//
// Each kernel's body is compiled twice, in two namespaces (AVX2 with FMA, and the baseline);
// KERNEL_ENTRIES(PREFIX, FN, ARGS, FAST, PORTABLE) defines PREFIX_f32 and PREFIX_f64, which
// run FN<float> or FN<double>(args, lo, hi) from the namespace the CPU can run, and
// PREFIX_tasks_f32 and PREFIX_tasks_f64(args, bounds, tasks, threads), which run the entry on
// the tasks [bounds[t], bounds[t + 1]), t < tasks; each returns 0, or 1 if a task failed.
//
// Why the tasks run on OpenMP. PyTorch's CPU operations run on an OpenMP team, whose threads
// keep spinning for a while after each operation. Kernel tasks handed to other threads (a
// pool of Python threads) then share the cores with a spinning thread after every PyTorch
// operation between two kernel calls: measured on 2 cores, about a seventh of a paper-size
// Fourier training step. Built with OpenMP, a call runs its tasks on that same team (the
// extension links the libgomp that PyTorch has loaded, by its soname): the spinning thread
// is the one that takes the next task. Tasks are handed out one at a time (dynamic
// schedule), so a thread that the scheduler preempts delays only its own task. Built without
// OpenMP, `rn_openmp` (_ring_native.cpp) says 0 and the Python side hands the tasks to its
// pool instead.
#ifndef FOURIER_KERNELS_H
#define FOURIER_KERNELS_H
#include <stdint.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define KERNELS_X86 1
static inline bool kernels_fast_isa() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
static inline bool kernels_fast_isa() { return true; }  // one build: the compiler's own target
#endif

#ifdef _OPENMP
#define KERNELS_PARALLEL _Pragma("omp parallel for schedule(dynamic, 1) num_threads(threads) reduction(| : failed)")
#else
#define KERNELS_PARALLEL
#endif

#define KERNEL_ENTRY(NAME, FN, F, ARGS, FAST, PORTABLE)                                      \
extern "C" int NAME(const ARGS* a, int64_t lo, int64_t hi) {                                 \
  return kernels_fast_isa() ? FAST::FN<F>(*a, lo, hi) : PORTABLE::FN<F>(*a, lo, hi);         \
}

#define KERNEL_TASKS(NAME, ENTRY, ARGS)                                                      \
extern "C" int NAME(const ARGS* a, const int64_t* bounds, int64_t tasks, int threads) {      \
  int failed = 0;                                                                           \
  (void)threads;                                                                            \
  KERNELS_PARALLEL                                                                          \
  for (int64_t t = 0; t < tasks; ++t) failed |= ENTRY(a, bounds[t], bounds[t + 1]);         \
  return failed;                                                                            \
}

#define KERNEL_ENTRIES(PREFIX, FN, ARGS, FAST, PORTABLE)                                     \
  KERNEL_ENTRY(PREFIX##_f32, FN, float, ARGS, FAST, PORTABLE)                                \
  KERNEL_ENTRY(PREFIX##_f64, FN, double, ARGS, FAST, PORTABLE)                               \
  KERNEL_TASKS(PREFIX##_tasks_f32, PREFIX##_f32, ARGS)                                       \
  KERNEL_TASKS(PREFIX##_tasks_f64, PREFIX##_f64, ARGS)

#endif  // FOURIER_KERNELS_H
