"""``python -m hf_genrec COMMAND ...``: the same as the ``hf-genrec`` command."""

from .cli.main import cli

if __name__ == "__main__":
    cli()
