"""EdgeTeach device side: live classifiers over MQTT, with no PyTorch."""

__version__ = "0.1.0"
