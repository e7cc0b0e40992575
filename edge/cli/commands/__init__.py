"""Sub-commands of the `edge` CLI: thin argument parsing over library code."""
