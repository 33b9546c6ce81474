"""``python -m vidtok_kit`` runs the CLI."""

from vidtok_kit.cli import main

if __name__ == "__main__":
    main()
