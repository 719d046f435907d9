"""Where results live: the run record (:mod:`.record`, the only place that knows its fields;
:mod:`.migrations` reads older schemas), the run store on disk (:mod:`.run_store`: read,
write, resume, scan, settle, locks), the records of several folders (:mod:`.collection`),
atomic file writes and checkpoints."""
