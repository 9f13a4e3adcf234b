"""`sagan prepare ...`: the sub-commands that build prepared datasets."""

import typer

prepare_app = typer.Typer(help="Convert LSUN, an image folder or the built-in synthetic scenes into a prepared dataset.",
                          no_args_is_help=True)
