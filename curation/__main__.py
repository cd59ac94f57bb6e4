"""`python -m curation` runs the command line."""

from curation.cli import app

app()
