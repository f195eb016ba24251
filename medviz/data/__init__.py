"""Data sources (one module each), the on-disk store they land in, and the DataModule that serves them.

Import from the modules themselves (``medviz.data.image_arrays``, ``medviz.data.datamodule``): this
package stays free of PyTorch so that ingest worker processes start quickly.
"""
