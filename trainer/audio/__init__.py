"""The sound trainer: folders of sound clips in, a checked audio bundle out (`job`). Clips to training
windows and their augmentation (`data`), the log-mel front end that lives inside the ONNX graph
(`frontend`), coloured noise (`noise`), the classifiers over it (`models`) and their training loops (`loops`: end to end, or a frozen
image backbone from trainer.image with trainer.head's head)."""
