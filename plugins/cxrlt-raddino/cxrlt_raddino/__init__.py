"""cxrlt plugin: the RAD-DINO chest X-ray foundation backbone (see plugin.py for the entry)."""
