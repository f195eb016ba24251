"""The on-disk store every source lands in: decoded, resized images as one memory-mapped array.

A store is a folder: ``images-<generation>.bin`` (rows (H, W, C) in the stored dtype, read with
``np.memmap``), ``index.sqlite`` (which source item is which row, with the size and mtime it was
read at) and the statistics kept for its current content. :func:`~medviz.store.ingest.ingest`
builds and updates it in parallel, incrementally and resumably; :func:`~medviz.store.read.open_store`
reads it without loading it.
"""
