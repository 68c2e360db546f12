"""The `specc` command and `python -m specc`: a Ctrl-C while the command is still loading ends it quietly too."""
import sys


def main(argv=None):
    try:
        from .cli import EXIT_INTERRUPTED
        from .cli import main as run
    except KeyboardInterrupt:
        sys.stderr.write("\nInterrupted.\n")
        sys.exit(130)
    try:
        run(argv)
    except KeyboardInterrupt:  # between the command's own handlers
        sys.stderr.write("\nInterrupted.\n")
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
