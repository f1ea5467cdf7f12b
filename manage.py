#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskmaster.settings")
    from taskmaster.env import ConfigError

    try:
        from django.core.management import execute_from_command_line

        execute_from_command_line(sys.argv)
    except ConfigError as exc:
        # Configuration problems are the operator's to fix: one line, no traceback.
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
