"""Reading a run folder and rebuilding what it trained: its config, checkpoints, data and method.

Below the map tools, evaluation and training, which all open run folders: training writes them,
the others read them, and neither reaches into the other for it.
"""
