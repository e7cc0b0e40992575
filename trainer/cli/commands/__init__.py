"""Sub-commands of the `trainer` CLI: thin argument parsing over library code."""
