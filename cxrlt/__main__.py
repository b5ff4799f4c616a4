"""``python -m cxrlt`` (and ``torchrun -m cxrlt``) runs the CLI."""

from cxrlt.cli import main

if __name__ == "__main__":
    main()
