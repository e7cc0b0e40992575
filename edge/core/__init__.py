"""What the device and the trainer share, torch-free: the bundle contract (`bundle`), running a bundle with
ONNX Runtime (`session`), decoding and fitting images (`images`) and sound (`audio`, `audio_windows`) exactly
as the model was trained, folder data sets (`datasets`), scoring a bundle on one (`evaluate`), and the
command-line conventions of `edge` and `trainer` (`clikit`).

Imports nothing else from `edge`: everything above it may use it, and so may `trainer`.
"""
