"""Where results live: the run record (:mod:`.record`, the only place that knows its fields),
the run store on disk (:mod:`.run_store`: read, write, scan, locks), settlement of ended
jobs (:mod:`.settle`), atomic file writes and checkpoints."""
