"""Copy prompts/*.prompt into k8s/prompts/ and list them in k8s/kustomization.yaml's `prompts` config map.

    python scripts/k8s_prompts.py          # after editing prompts/; then `kubectl apply -k k8s/`
    python scripts/k8s_prompts.py --check  # exit 1 when k8s/ is out of step with prompts/ (the tests run it)

kustomize reads only files inside k8s/, hence the copy. Running it twice changes nothing.
"""

# ruff: noqa: T201 - a command-line tool: printing is its output

import argparse
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
SOURCE = PROJECT / "prompts"
COPY = PROJECT / "k8s" / "prompts"
KUSTOMIZATION = PROJECT / "k8s" / "kustomization.yaml"
BEGIN = "      # prompts: begin (written by scripts/k8s_prompts.py)\n"
END = "      # prompts: end\n"


def wanted() -> tuple[dict[str, str], str]:
    """The files k8s/prompts/ should hold, and kustomization.yaml as it should read."""
    files = {path.name: path.read_text(encoding="utf-8") for path in sorted(SOURCE.glob("*.prompt"))}
    text = KUSTOMIZATION.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    listed = "".join(f"      - prompts/{name}\n" for name in files)
    return files, head + BEGIN + listed + END + tail


def current() -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(COPY.glob("*.prompt"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when k8s/ is out of step, write nothing")
    args = parser.parse_args(argv)
    files, kustomization = wanted()
    in_step = current() == files and KUSTOMIZATION.read_text(encoding="utf-8") == kustomization
    if args.check:
        if not in_step:
            print("k8s/prompts is out of step with prompts/: run python scripts/k8s_prompts.py", file=sys.stderr)
        return 0 if in_step else 1
    if not in_step:
        COPY.mkdir(exist_ok=True)
        for stale in set(current()) - set(files):
            (COPY / stale).unlink()
        for name, text in files.items():
            (COPY / name).write_text(text, encoding="utf-8")
        KUSTOMIZATION.write_text(kustomization, encoding="utf-8")
        print(f"k8s/prompts: {', '.join(files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
