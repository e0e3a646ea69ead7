"""`python -m admin ...` runs the same command line as `switchboard-admin ...`."""

from admin.cli import main

if __name__ == "__main__":
    main()
