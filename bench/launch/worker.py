"""One run in a process of its own (:mod:`.processes`): ``python -m scaleqbench.bench.launch.worker``.

It reads what to run as JSON on stdin (the spec, the experiment folder, the record
facts of its job, its thread count) and calls ``run_one``, which writes the run's
record and checkpoints. Exit status 0 when the run ended (its record says how), 1
when a user error stopped it (one line on stderr), 130 when it was interrupted.

Under a Slurm task (``"slurm": true``) the process leaves the requeue signal
(``USR2``) and the first ``SIGTERM`` of a cancellation to the task that started it,
as the task itself does (submitit): the task decides when its runs stop. A run without
a job (a local GPU sweep's) takes its run over and holds its computing lock, as a local
run in the launcher's own process does (:func:`.job.running_here`).
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from pathlib import Path

__all__ = ["main"]


def main() -> int:
    payload = json.loads(sys.stdin.read())
    if payload.get("slurm"):
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # imported after the signals are set: importing torch takes seconds
    import torch

    from scaleqbench.bench.errors import BenchError
    from scaleqbench.bench.launch.job import running_here
    from scaleqbench.bench.run.cpu_memory import tune_cpu_allocator
    from scaleqbench.bench.run.train import run_one
    from scaleqbench.bench.spec import RunSpec

    tune_cpu_allocator()
    if payload.get("threads"):
        torch.set_num_threads(int(payload["threads"]))
    spec = RunSpec.from_json(payload["spec"])
    context, out_dir = payload.get("context") or {}, Path(payload["out_dir"])
    try:
        with (running_here(out_dir, spec.run_id) if not context.get("job_id")
              else contextlib.nullcontext()):
            run_one(spec, out_dir, progress=bool(payload.get("progress")), context=context)
    except KeyboardInterrupt:
        return 130
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
