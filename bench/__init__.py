"""scalebench harness: CLI, specs, training/evaluation, metrics, launchers, results."""
