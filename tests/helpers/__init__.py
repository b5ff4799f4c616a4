"""Helpers shared by cxrlt's test modules (fixtures shared with plugin packages are in
``cxrlt.pytest_plugin``)."""
