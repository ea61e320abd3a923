"""One module per `gp` subcommand's workflow; `cli.py` parses flags and calls one function here."""
