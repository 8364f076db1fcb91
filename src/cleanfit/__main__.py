"""``python -m cleanfit`` (and ``torchrun -m cleanfit``) runs the command line."""

from cleanfit.cli.main import main

if __name__ == "__main__":
    main()
