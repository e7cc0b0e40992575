"""MQTT transport: one resilient broker connection (`connection`: reconnects, a bounded QoS 1 queue while
the broker is away, handler threads, MQTT 5 request/response) and the device's topic names (`topics`).
Knows nothing of pipelines or decisions: the daemon and the LLM service build their messages on top."""
