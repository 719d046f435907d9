"""What one run computes: training (:mod:`.train`), evaluation and metrics (:mod:`.evaluate`,
:mod:`.metrics`, :mod:`.lie`), per-size BatchNorm statistics, step timing (:mod:`.perf`) and
its memory bound, and the CPU allocator tuning the command line opts in to."""
