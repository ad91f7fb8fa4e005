"""Command-line interface: Typer commands, stderr views and exit-code handling."""
