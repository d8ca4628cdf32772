"""python -m elmarc.report <folder>: aggregate every job below a run or multirun folder."""
import argparse
import sys
from pathlib import Path

from . import write_report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m elmarc.report", description=__doc__)
    ap.add_argument("folder", help="a multirun folder (multirun/<date>/<time>) or a single run folder")
    args = ap.parse_args(argv)

    if not Path(args.folder).is_dir():
        print(f"elmarc.report: {args.folder} is not a folder", file=sys.stderr)
        return 2
    write_report(args.folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
