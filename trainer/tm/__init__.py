"""`trainer import-tm`: a Teachable Machine export (folder or zip) turned into a normal EdgeTeach bundle.

One module per job: `export_reader` (the folder or zip, read safely into memory), `detect` (which export
it is), `labels`, `graph` (the ONNX building blocks both converters share), `tflite` (TFLite flatbuffer ->
ONNX), `keras_layers` (Keras / tfjs-layers topology + weights -> ONNX), `h5_weights` and `tfjs_weights`
(the two weight containers), `bundle_writer`, and `importer` (the whole run). docs/teachable-machine.md.
"""
