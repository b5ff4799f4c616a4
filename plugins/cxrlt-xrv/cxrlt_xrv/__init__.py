"""cxrlt plugin: torchxrayvision backbones (see plugin.py for the entries)."""
