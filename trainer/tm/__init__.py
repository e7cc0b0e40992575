"""`trainer import-tm`: a Teachable Machine export (folder or zip) turned into a normal EdgeTeach bundle.

One module per job: `export_reader` (the folder or zip, read safely into memory), `detect` (which export
it is), `labels`, `graph` (the ONNX building blocks the converters share), `tflite_reader` and `tflite_onnx`
(TFLite flatbuffer -> ONNX), `keras_layers` (Keras / tfjs-layers topology + weights -> ONNX), `h5_weights` and
`tfjs_weights` (the two weight containers), `sound_frontend` (TM's browser audio front end as ONNX),
`bundle_writer`, `importer` (the whole run), and `project` (a TM project file as a training data set).
docs/teachable-machine.md.
"""
