"""`trainer fleet`'s output: the devices table and the live report of a rollout. The rollout itself (signing,
chunks, waves) is torch-free and lives in edge.fleet, shared with the device."""
