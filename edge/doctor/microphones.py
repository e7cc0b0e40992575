"""Microphones: PortAudio's input devices and each microphone pipeline's device or file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.doctor.base import CheckResult, active_pipelines

if TYPE_CHECKING:
    from edge.config import EdgeConfig, MicrophonePipelineConfig


def check_microphones(config: EdgeConfig | None) -> list[CheckResult]:
    mic_pipelines = [p for p in active_pipelines(config) if p.kind == "microphone" and not p.source.file]
    try:
        import sounddevice as sd

        inputs = [f"{i}: {d['name']}" for i, d in enumerate(sd.query_devices()) if d.get("max_input_channels", 0) > 0]
    except Exception as exc:
        return [CheckResult("microphones", "fail" if mic_pipelines else "warn", f"cannot list audio devices ({exc})",
                            "install PortAudio: `sudo apt install libportaudio2`")]
    if not inputs:
        return [CheckResult("microphones", "fail" if mic_pipelines else "skip", "no audio input device",
                            "plug in a USB microphone and check `arecord -l`; the user needs the audio group" if mic_pipelines else "")]
    return [CheckResult("microphones", "ok", "; ".join(inputs))]


def check_microphone_source(index: int, pipeline: MicrophonePipelineConfig) -> CheckResult:
    name = f"microphone {pipeline.name}"
    source = pipeline.source
    if source.file:
        try:
            import soundfile

            info = soundfile.info(source.file)
        except Exception as exc:
            return CheckResult(name, "fail", f"{source.file}: cannot read it as sound ({exc})",
                               f"fix pipelines[{index}].source.file (a WAV or FLAC file)")
        return CheckResult(name, "ok", f"file {source.file}: {info.samplerate} Hz, {info.duration:.1f} s")
    from edge.sources.base import SourceError
    from edge.sources.microphone import resolve_input_device

    try:
        _, info = resolve_input_device(source.device)
    except SourceError as exc:
        return CheckResult(name, "fail", str(exc),
                           "plug in the microphone (`arecord -l` lists capture devices), add the user to the audio group, or set "
                           f"pipelines[{index}].source.device")
    return CheckResult(name, "ok",
                       f"{info.get('name', source.device)} ({int(info.get('max_input_channels', 0))} ch, "
                       f"{float(info.get('default_samplerate', 0)):.0f} Hz)")
