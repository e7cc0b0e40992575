"""`edge run`: the device daemon (`daemon.Daemon`) and what it is made of: the pipelines by name
(`registry`), the SIGHUP reload (`reload`), decisions to MQTT messages (`publisher`), MQTT commands
(`commands`), Home Assistant discovery (`discovery`), the health HTTP server (`health`) and its Prometheus
families (`metrics`). The top of the device stack below the CLI: it wires config, pipelines, MQTT, the host
and the LLM child process together.
"""
