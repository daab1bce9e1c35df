"""``python -m bench NAME [ARGS...]``: bench/NAME.py's ``main()`` with ARGS as its argv (NAME
with - or _). ``python -m bench [--list]``: every bench and the first line of its docstring."""

import importlib
import sys

from bench import FOLDER, bench_names, summary


def listing() -> str:
    names = bench_names()
    width = max(map(len, names))
    return "\n".join(f"{name:<{width}}  {summary(name)}" for name in names)


def run(name: str, args: list[str]) -> None:
    """bench/NAME.py's main() as ``python bench/NAME.py ARGS`` runs it (the same argv)."""
    sys.argv = [str(FOLDER / f"{name}.py"), *args]
    importlib.import_module(f"bench.{name}").main()


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("--list", "-h", "--help"):
        print("python -m bench NAME [ARGS...]: run bench/NAME.py\n\n" + listing())
        return 0
    name = argv[0].replace("-", "_")
    if name not in bench_names():
        print(f"python -m bench: no bench {argv[0]!r} (python -m bench --list)", file=sys.stderr)
        return 2
    run(name, argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
