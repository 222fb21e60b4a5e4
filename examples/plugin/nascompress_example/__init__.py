"""An example nascompress plug-in: the ``example-mlp`` space and ``example-blobs`` data."""
