"""The built-in recipes: TOML files of run options, each setting with its source.

Data only, read by :func:`cxrlt.options.read_recipe` through ``cxrlt.builtins.recipes``; a
recipe file is also a valid ``cxrlt run --config`` file.
"""
