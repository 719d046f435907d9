"""scalebench's harness: CLI, specs, training and evaluation, metrics, launchers, records.

Importing it changes nothing in the process: the CLI (:func:`scalebench.bench.cli.main`) and
the job entry point (:class:`scalebench.bench.job.SweepJob`) opt in to the allocator tuning of
:mod:`scalebench.bench.cpu_memory`; a library user may call ``tune_cpu_allocator()`` too.
"""
