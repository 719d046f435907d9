"""scalebench's harness: CLI, specs, training and evaluation, metrics, launchers, records."""

import os

# Large CPU tensors (the Fourier layers' grid stacks are hundreds of MB) are freshly
# mmapped on every allocation, and the kernel zeroes them 4 KiB page by page: measured,
# ~40 % of a `fourier` training step was page faults. PyTorch backs allocations over
# 2 MiB with transparent huge pages when this is set (read lazily, so setting it here,
# before the first big allocation, is enough); a user's own setting wins.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
