"""``deeplabstream-inspect``: what a model is, with the lab's own model formats of its settings."""

from __future__ import annotations

import sys
from pathlib import Path

from deeplabstream.core.errors import SettingsError
from deeplabstream.core.optional import exit_with
from deeplabstream.core.plugins import plugin_notices
from deeplabstream.pose import inspect as model_inspection
from deeplabstream.settings import load_settings

EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    """Run the command; return its exit status (2: the settings or the model cannot be read)."""
    parser = model_inspection.build_parser(path_required=False)
    parser.add_argument(
        "--settings",
        type=Path,
        help="a settings file: its lab's model formats ([Pose] MODEL_FORMATS) read PATH too, "
        "and PATH defaults to its [Pose] MODEL_PATH",
    )
    args = parser.parse_args(argv)
    if args.settings is not None:
        try:
            settings = load_settings(args.settings, cameras_required=False)
        except SettingsError as error:
            print(error, file=sys.stderr)
            return EXIT_USAGE
        if args.path is None:  # its MODEL_PATH (None: the bundled model, as load_model reads)
            # an ensemble's first model: its keypoints are the ensemble's (docs/ensembles.md)
            args.path = settings.pose.model_path[0] if settings.pose.model_path else None
    elif args.path is None:
        parser.error("name a model (PATH), or a settings file whose [Pose] MODEL_PATH names one")
    status = model_inspection.inspect(args)
    for text in plugin_notices():  # a lab format others may write to, an old interface
        print(f"warning: {text}", file=sys.stderr)
    return status


def run() -> None:
    """Run as the console script: exit with :func:`main`'s code."""
    exit_with(main)


if __name__ == "__main__":
    run()
