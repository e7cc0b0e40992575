"""The machine the device runs on: telling systemd how the service is doing (`systemd`: sd_notify without
libsystemd) and reading the process's and the board's figures (`procstats`: CPU, memory, SoC temperature).

Imports nothing else from `edge`; the daemon, the LLM service and the doctor use it.
"""
