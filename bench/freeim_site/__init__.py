"""The freeim side of the benchmark: a minimal project whose REST connect authenticates bench clients."""
