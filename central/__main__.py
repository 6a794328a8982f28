"""``python -m central serve``."""

from central.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
