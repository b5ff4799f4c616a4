"""A cxrlt plugin started from cxrlt's template: one worked example per hook (``my-loss``,
``my-sampler``, ..., ``my-command``)."""
