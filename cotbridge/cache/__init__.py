"""The SQLite response cache: canonical request keys (keys.py), the store (store.py), in-flight de-duplication
(inflight.py), and where rows are written (row_writes.py, writer_process.py, checkpoint.py).

This package's own module imports nothing, so that the cache's writer process, which only writes rows, starts
without the store's imports: import from the modules."""
