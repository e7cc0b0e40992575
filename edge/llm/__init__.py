"""The local LLM beside the classifiers, split by job (as llama-cpp-python's server is): the model (`engine`,
`chat_format`), the one worker thread and its bounded queue (`worker`), `core` (`admit()`: the one path from
HTTP or MQTT to the model), the APIs (`http_api`, OpenAI-compatible; `mqtt_api`), the request format
(`requests`), the classifiers' live states as context (`sensors`), `metrics`, the service (`service`: `edge
llm serve`; `process`: the child `edge run` starts), and the tools (`client`, `compare`, `pull`, `smoke`).
Settings: edge.config.llm. Uses edge.config, edge.mqtt (transport) and edge.host; never the daemon or the
pipelines.
"""
