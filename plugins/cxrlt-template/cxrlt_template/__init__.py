"""A cxrlt plugin started from cxrlt's template: it adds the loss ``my-loss``."""
