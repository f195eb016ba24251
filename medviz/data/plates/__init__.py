"""Single-cell crops from plates: fields of view, a segmentation and tables, cut into the store.

The readers of each format (:mod:`.cellprofiler`, :mod:`.deepprofiler`, :mod:`.masks`) turn their
tables into one :class:`~medviz.data.plates.fields.FieldSet`: the fields (one file per channel) and
one row per object (its field, its centre and its metadata). :mod:`.dataset` cuts every object's
crop (:mod:`.crops`) into the store, one field read per ingest, and builds the dataset.
"""
