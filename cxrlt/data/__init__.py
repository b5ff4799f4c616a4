"""Data: label lists, data sets, images, splits, samplers and loaders."""
