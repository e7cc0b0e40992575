"""`trainer demo`'s material: built-in images (`image_samples`: shapes) and sounds (`audio_samples`: whistles,
claps, background noise) generated on the spot, and the live half that runs a trained bundle in the real
device daemon (`live`). Not used by training itself."""
