// The Fourier kernels' task drivers: one call's tasks on the threads that compute PyTorch's
// own operations.
//
// Why. PyTorch's CPU operations run on an OpenMP team, whose threads keep spinning for a while
// after each operation. Kernel tasks handed to other threads (a pool of Python threads) then
// share the cores with a spinning thread after every PyTorch operation between two kernel
// calls: measured on 2 cores, about a seventh of a paper-size Fourier training step. Built
// with OpenMP, a call runs its tasks on that same team (the extension links the libgomp that
// PyTorch has loaded, by its soname): the spinning thread is the one that takes the next task.
// Tasks are handed out one at a time (dynamic schedule), so a thread that the scheduler
// preempts delays only its own task. Built without OpenMP, `rn_openmp` (_ring_native.cpp)
// says 0 and the Python side hands the tasks to its pool instead.
//
// RN_TASKS(NAME, ENTRY, ARGS): NAME(args, bounds, tasks, threads) runs
// ENTRY(args, bounds[t], bounds[t + 1]) for t < tasks; 0, or 1 if any task failed.
#ifndef RN_TASKS_H
#define RN_TASKS_H
#include <stdint.h>

#ifdef _OPENMP
#define RN_PARALLEL _Pragma("omp parallel for schedule(dynamic, 1) num_threads(threads) reduction(| : failed)")
#else
#define RN_PARALLEL
#endif

#define RN_TASKS(NAME, ENTRY, ARGS)                                                          \
extern "C" int NAME(const ARGS* a, const int64_t* bounds, int64_t tasks, int threads) {      \
  int failed = 0;                                                                           \
  (void)threads;                                                                            \
  RN_PARALLEL                                                                               \
  for (int64_t t = 0; t < tasks; ++t) failed |= ENTRY(a, bounds[t], bounds[t + 1]);         \
  return failed;                                                                            \
}

#endif  // RN_TASKS_H
