"""`buf breaking` (WIRE_JSON, as configured in buf.yaml) against the previous commit.

    python scripts/check_breaking.py [--against REF] [--root DIR]

Which revision the protos are compared with:
  * uncommitted changes under proto/, third_party/ or buf.yaml (staged, unstaged or
    untracked): against HEAD, so an edit is checked before it is committed;
  * a clean tree: against HEAD~1 (the first parent: on CI, a clone of main, that is
    main's previous commit, also for a merge commit);
  * `--against REF` (or $BREAKING_AGAINST): against that revision (e.g. origin/main on a
    feature branch).
The comparison is skipped, with a message and exit status 0, when there is no base commit
(a repository with one commit) or the base has no proto/ or buf.yaml (the contract did not
exist yet). A shallow clone without the base commit fails (exit 2): fetch more history
(`git fetch --deepen=1`) rather than let the check pass unnoticed.
buf reads the base straight from git (`.git#ref=<commit>`), so nothing is checked out.
Exit status: 0 compatible or skipped, 1 breaking changes (buf's messages are printed),
2 the check could not run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

CONTRACT_PATHS = ("proto", "third_party", "buf.yaml")


def git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)


def find_buf() -> str | None:
    """buf from the virtualenv this script runs in (buf-bin), else from PATH."""
    beside = Path(sys.executable).parent / "buf"
    return str(beside) if beside.exists() else shutil.which("buf")


def contract_is_dirty(root: Path) -> bool:
    status = git(root, "status", "--porcelain", "--untracked-files=all", "--", *CONTRACT_PATHS)
    return bool(status.stdout.strip())


def resolve(root: Path, ref: str) -> str | None:
    done = git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    return done.stdout.strip() if done.returncode == 0 else None


def exists_in(root: Path, commit: str, path: str) -> bool:
    return git(root, "cat-file", "-e", f"{commit}:{path}").returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--against",
        default=os.environ.get("BREAKING_AGAINST") or None,
        help="revision to compare with (default: HEAD~1, or HEAD when "
        "proto/ has uncommitted changes)",
    )
    parser.add_argument("--root", type=Path, default=None, help="repository root (default: cwd's)")
    args = parser.parse_args(argv)

    start = args.root or Path.cwd()
    top = git(start, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        print(f"check_breaking: {start} is not in a git repository: {top.stderr.strip()}")
        return 2
    root = Path(top.stdout.strip())
    if resolve(root, "HEAD") is None:
        print("check_breaking: skipped, the repository has no commits yet")
        return 0

    chosen = _baseline(root, args.against)
    if isinstance(chosen, int):
        return chosen
    ref, why, base = chosen
    missing = [path for path in ("proto", "buf.yaml") if not exists_in(root, base, path)]
    if missing:
        print(
            f"check_breaking: skipped, {' and '.join(missing)} did not exist in {ref} ({base[:12]})"
        )
        return 0
    return _buf_breaking(root, ref, why, base)


def _baseline(root: Path, against: str | None) -> tuple[str, str, str] | int:
    """(ref, why it was chosen, its commit) to compare with, or the exit status."""
    if against:
        ref, why = against, "as asked"
    elif contract_is_dirty(root):
        ref, why = "HEAD", "the working tree has uncommitted proto changes"
    else:
        ref, why = "HEAD~1", "the previous commit"
    base = resolve(root, ref)
    if base is not None:
        return ref, why, base
    shallow = git(root, "rev-parse", "--is-shallow-repository").stdout.strip() == "true"
    if shallow:
        print(
            f"check_breaking: {ref} is not in this shallow clone; fetch more history "
            "(git fetch --deepen=1) so that the contract can be compared"
        )
        return 2
    if ref == "HEAD~1":
        print("check_breaking: skipped, HEAD is the first commit (nothing to compare with)")
        return 0
    print(f"check_breaking: unknown revision {ref}")
    return 2


def _buf_breaking(root: Path, ref: str, why: str, base: str) -> int:
    """Run buf breaking against `base`; 0 when compatible, 1 when breaking, 2 on failure."""
    buf = find_buf()
    if buf is None:
        print("check_breaking: buf not found (pip install buf-bin, or make install)")
        return 2
    print(f"check_breaking: buf breaking against {ref} ({base[:12]}, {why})")
    done = subprocess.run(
        [buf, "breaking", "--against", f".git#ref={base}"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:
        print("check_breaking: no breaking changes (WIRE_JSON)")
        return 0
    print((done.stdout + done.stderr).strip())
    if done.returncode == 100:
        print(f"check_breaking: breaking changes against {ref} ({base[:12]}), see above")
        return 1
    print(f"check_breaking: buf failed with exit status {done.returncode}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
