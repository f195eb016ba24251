"""Tools for finished maps: figures, the interactive explorer, quality control and embedding new images."""
