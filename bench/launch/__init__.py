"""Where runs execute: the :class:`~.api.Launcher` protocol, the local launcher, the Slurm
launcher (submitit) with its configuration and scheduler queries, the sweep file, the job
entry point (:mod:`.job`), a pure function of a frozen
:class:`~scaleqbench.bench.spec.RunSpec`, and runs in processes of their own
(:mod:`.processes`, :mod:`.worker`; several per Slurm task: :mod:`.task`)."""
