"""cxrlt's own entries, registered through the same hooks as third-party plugins.

Each module here must stay import-cheap: targets are ``"module:attr"`` strings.
"""
