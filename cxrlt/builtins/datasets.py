"""Built-in data sets."""

from cxrlt.hookspecs import hookimpl


@hookimpl
def register_datasets(register):
    register(
        "synthetic",
        "cxrlt.data.embedded:synthetic_dataset",
        summary="Embedded synthetic long-tailed chest X-rays in the CXR-LT 2026 format; "
        "generated on first use, then cached.",
        aliases=("embedded",),
    )
