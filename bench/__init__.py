"""scalebench's harness: CLI, specs, training and evaluation, metrics, launchers, records."""

from bench.cpu_memory import tune_cpu_allocator

# before the first large tensor: see bench/cpu_memory.py for what and why (measured)
tune_cpu_allocator()
