"""The `trajgym` command line (typer): the top layer, which may import every other package."""
