"""The image trainer: folders of photos in, a checked image bundle out (`job`). Decoding with the device's
own code plus augmented views (`data`), ImageNet-pretrained backbones cut into a frozen and a trainable part,
and the whole classifier as one exported graph (`backbones`), the frozen part's embeddings computed once with
ONNX Runtime and cached (`embeddings`). The head is trained by trainer.head, shared with the audio trainer."""
