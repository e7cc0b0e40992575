"""`edge llm serve|chat|compare|pull`: the local LLM (llama.cpp) on the device."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from edge.llm.pull import DEFAULT_DIR


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "llm",
        help="local LLM: OpenAI-compatible HTTP + MQTT server, terminal chat, model comparison, download",
        description="A small GGUF model through llama.cpp, with no cloud. See docs/llm.md.",
    )
    sub = parser.add_subparsers(dest="llm_command", metavar="SUBCOMMAND")
    sub.required = True

    serve = sub.add_parser(
        "serve",
        help="serve a model over HTTP (OpenAI API) and MQTT",
        description="Serves one GGUF model: OpenAI-compatible HTTP on 127.0.0.1 (/v1/chat/completions, /v1/models, "
        "/health, /metrics) and, with an mqtt: section in the config or --mqtt-host, requests on "
        "<prefix>/llm/request. Settings come from the config's llm: section; flags override them.",
    )
    serve.add_argument("-c", "--config", help="device config YAML (its llm:, mqtt: and device_id)")
    serve.add_argument("--model", help="GGUF file (overrides llm.model)")
    serve.add_argument("--sha256", dest="model_sha256", help="expected SHA-256 of the GGUF, checked at load")
    serve.add_argument("--name", dest="model_name", help="model name shown to clients (default: the file name)")
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 8080)")
    serve.add_argument("--ctx", dest="context_size", type=int, help="context size in tokens (default 2048)")
    serve.add_argument("--threads", type=int, help="CPU threads (0 = all cores)")
    serve.add_argument("--gpu-layers", type=int, help="layers offloaded to the GPU (-1 = all; Jetson)")
    serve.add_argument("--chat-format", help="chat format when the GGUF has no template (chatml, gemma, llama-3, ...)")
    serve.add_argument("--api-key", help="require `Authorization: Bearer KEY` (prefer llm.api_key in a protected config)")
    serve.add_argument("--insecure-no-key", action="store_true",
                       help="allow a non-loopback --host/llm.host without an API key (anyone on the network may use the model)")
    serve.add_argument("--queue-size", type=int, help="requests that may wait behind the running one (default 4)")
    serve.add_argument("--max-tokens", type=int, help="ceiling for any request's max_tokens (default 512)")
    serve.add_argument("--timeout", dest="request_timeout_s", type=float, help="per-request timeout in seconds (default 120)")
    serve.add_argument("--mqtt-host", help="MQTT broker (overrides mqtt.host; enables the MQTT interface)")
    serve.add_argument("--mqtt-port", type=int, help="MQTT broker port")
    serve.add_argument("--no-mqtt", action="store_true", help="HTTP only, even when the config has an mqtt: section")
    serve.set_defaults(func=run_serve)

    chat = sub.add_parser(
        "chat",
        help="chat in the terminal, streaming (with a running server, or loading the model here)",
        description="Type a message, get the answer as it is generated. /reset forgets the conversation, /quit ends. "
        "Talks to `edge llm serve` (--url, or the host/port of -c CONFIG) or, with --model, loads the GGUF itself.",
    )
    chat.add_argument("-c", "--config", help="device config: take the server's address and API key from llm:")
    chat.add_argument("--url", help="server URL (default http://127.0.0.1:8080)")
    chat.add_argument("--api-key", help="API key of the server")
    chat.add_argument("--model", help="load this GGUF here instead of talking to a server")
    chat.add_argument("--threads", type=int, default=0, help="with --model: CPU threads (0 = all cores)")
    chat.add_argument("--system", help="system prompt")
    chat.add_argument("--max-tokens", type=int, default=256, help="longest answer in tokens (default 256; the server may lower it)")
    chat.add_argument("--temperature", type=float,
                      help="sampling temperature; 0 = always the most likely token (default: the server's llm.temperature)")
    chat.add_argument("--seed", type=int, help="sampling seed, for repeatable answers (default: random)")
    chat.add_argument("--no-sensors", action="store_true", help="do not add the live sensor states to the prompt")
    chat.add_argument("--stats", action="store_true", help="print tokens, speed and time to first token after each answer")
    chat.set_defaults(func=run_chat)

    compare = sub.add_parser(
        "compare",
        help="ask two models the same thing, answers side by side",
        description="Loads each model in turn (one in memory at a time), asks the same prompt with the same seed and "
        "temperature (default 0: each model's most likely answer), and prints the answers side by side.",
    )
    compare.add_argument("--model", action="append", required=True, help="a GGUF file; give --model twice (or more)")
    compare.add_argument("prompt", help="the question (quote it)")
    compare.add_argument("--system", help="system prompt for both")
    compare.add_argument("--max-tokens", type=int, default=128, help="longest answer in tokens (default 128)")
    compare.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default 0: each model's most likely answer)")
    compare.add_argument("--seed", type=int, default=0, help="sampling seed, the same for every model (default 0)")
    compare.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    compare.add_argument("--width", type=int, help="output width (default: the terminal's)")
    compare.add_argument("--json", action="store_true", help="print JSON instead of columns")
    compare.set_defaults(func=run_compare)

    pull = sub.add_parser(
        "pull",
        help="download a GGUF from the Hugging Face Hub and print its SHA-256",
        description="Needs network and the huggingface_hub package (installed by `scripts/setup.sh edge llm`). Saves the file "
        "as DIR/FILE (default models/FILE). Example: "
        "edge llm pull HuggingFaceTB/SmolLM2-360M-Instruct-GGUF smollm2-360m-instruct-q8_0.gguf",
    )
    pull.add_argument("repo", help="Hub repository, e.g. HuggingFaceTB/SmolLM2-360M-Instruct-GGUF")
    pull.add_argument("file", help="the .gguf file in it")
    pull.add_argument("--dir", default=DEFAULT_DIR, help=f"folder to save it in, relative to the current folder (default {DEFAULT_DIR})")
    pull.add_argument("--revision", help="branch, tag or commit of the repository (default: main)")
    pull.set_defaults(func=run_pull)

    smoke = sub.add_parser(
        "smoke",
        help="generate a few tokens in a child process: does this llama.cpp build run on this CPU?",
        description="A llama.cpp built for another CPU dies with SIGILL or SIGSEGV at its first generation. This runs one "
        "in a child process and reports the signal and the build flags to try instead of crashing. "
        "scripts/setup.sh and deploy/install.sh run it right after building llama.cpp.",
    )
    smoke.add_argument("--model", required=True, help="a GGUF file, e.g. models/smollm2-360m-instruct-q8_0.gguf")
    smoke.add_argument("--tokens", type=int, default=8, help="tokens to generate (default 8)")
    smoke.add_argument("--timeout", type=float, default=300, help="seconds before giving up (default 300)")
    smoke.set_defaults(func=run_smoke)


def run_serve(args: argparse.Namespace) -> int:
    from edge.llm.service import ServeConfigError, resolve_target, serve

    keys = ("model", "model_sha256", "model_name", "host", "port", "context_size", "threads", "gpu_layers", "chat_format",
            "api_key", "queue_size", "max_tokens", "request_timeout_s")
    overrides: dict[str, Any] = {k: getattr(args, k) for k in keys}
    try:
        target = resolve_target(args.config, overrides, args.mqtt_host, args.mqtt_port, args.no_mqtt, args.insecure_no_key)
    except ServeConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return serve(target)


def _chat_backend(args: argparse.Namespace) -> Any:
    from edge.llm.client import HttpChat, LocalChat

    if args.model:
        from edge.config.llm import LlmSettings
        from edge.llm.engine import Engine

        print(f"loading {args.model} ...", file=sys.stderr)
        return LocalChat(Engine.load(LlmSettings(model=args.model, max_tokens=max(1, args.max_tokens), threads=max(0, args.threads))))
    url, key = args.url, args.api_key
    if args.config and not url:
        from edge.config import load_config

        llm = load_config(args.config).llm
        host = "127.0.0.1" if llm.host in ("0.0.0.0", "::") else llm.host
        url = f"http://{host}:{llm.port}"
        key = key or llm.api_key
    return HttpChat(url or "http://127.0.0.1:8080", api_key=key)


def run_chat(args: argparse.Namespace) -> int:
    from edge.config import ConfigError
    from edge.llm.client import ClientError
    from edge.llm.engine import ModelLoadError, PromptTooLong

    try:
        backend = _chat_backend(args)
    except (ClientError, ModelLoadError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    system = [{"role": "system", "content": args.system}] if args.system else []
    history: list[dict[str, Any]] = list(system)
    interactive = sys.stdin.isatty()
    if interactive:
        print("Chat with the local model. /reset forgets the conversation, /quit (or Ctrl-D) ends.", file=sys.stderr)
    while True:
        try:
            line = input("you> " if interactive else "")
        except EOFError:
            break
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            break
        if text == "/reset":
            history = list(system)
            print("(conversation forgotten)", file=sys.stderr)
            continue
        history.append({"role": "user", "content": text})
        print("model> ", end="", flush=True)
        extra: dict[str, Any | None] = {"max_tokens": args.max_tokens, "temperature": args.temperature, "seed": args.seed}
        if args.no_sensors:
            extra["sensor_context"] = False
        try:
            answer = backend.stream(history, lambda t: print(t, end="", flush=True), **extra)
        except (ClientError, PromptTooLong) as exc:
            print(f"\nerror: {exc}", file=sys.stderr)
            history.pop()
            if isinstance(exc, ClientError) and "cannot reach" in str(exc):
                return 1
            continue
        print()
        history.append({"role": "assistant", "content": answer.text})
        if args.stats:
            t = answer.timings
            print(f"({t.get('predicted_n', 0)} tokens, {t.get('predicted_per_second', 0):.1f} tok/s, first token after "
                  f"{(answer.ttft_s or 0) * 1000:.0f} ms{', with sensor context' if answer.sensor_context else ''})", file=sys.stderr)
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from edge.llm.compare import compare_models, side_by_side
    from edge.llm.engine import ModelLoadError, PromptTooLong

    if len(args.model) < 2:
        print("error: give at least two models: --model A.gguf --model B.gguf", file=sys.stderr)
        return 2
    try:
        results = compare_models(args.model, args.prompt, system=args.system, max_tokens=args.max_tokens,
                                 temperature=args.temperature, seed=args.seed, threads=args.threads)
    except (ModelLoadError, PromptTooLong) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([{"model": r.model, "path": r.path, "chat_format": r.chat_format, "answer": r.answer.text,
                           "finish_reason": r.answer.finish_reason, "timings": r.answer.timings} for r in results], indent=2))
    else:
        print(f"Prompt: {args.prompt}\n")
        print(side_by_side(results, args.width))
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from edge.llm.pull import PullError, pull

    try:
        path, digest = pull(args.repo, args.file, args.dir, args.revision)
    except PullError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{digest}  {path}")
    # Absolute, because llm.model in a config is relative to the config file, not to this folder.
    print(f"\nServe it: edge llm serve --model {path} --sha256 {digest}\nor in your config:\nllm:\n  enabled: true\n"
          f"  model: {path.resolve()}\n  model_sha256: {digest}", file=sys.stderr)
    return 0


def run_smoke(args: argparse.Namespace) -> int:
    from edge.llm.smoke import main as smoke_main

    return smoke_main(["--model", args.model, "--tokens", str(args.tokens), "--timeout", str(args.timeout)])
