"""scaleqbench's harness: CLI, specs, training and evaluation, metrics, launchers, records.

Importing it changes nothing in the process: the CLI (:func:`scaleqbench.bench.cli.main.main`) and
the job entry point (:class:`scaleqbench.bench.launch.job.SweepJob`) opt in to the allocator tuning of
:mod:`scaleqbench.bench.run.cpu_memory`; a library user may call ``tune_cpu_allocator()`` too.
"""
