"""Starting rtdb's own child processes (the ``--workers`` workers, the ``--write-process``
writer): one way to spawn them and hand them their configuration."""
