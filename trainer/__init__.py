"""EdgeTeach trainer: transfer learning on a workstation, exported as an ONNX bundle."""

__version__ = "0.1.0"
