"""Command-line tools: one thin module per executable, each with ``main(argv=None) -> int``."""
