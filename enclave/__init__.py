"""The trusted side: runs inside the confidential VM, owns the keys, runs the model."""
