"""Generate the Python stubs and their .pyi types from proto/ (run by `make gen`).

Proto path = import path: with `-I proto` and `--python_out=client/python` the generated
modules import each other as `orchestrator.v1.*` and need no rewriting.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc_tools

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
THIRD_PARTY = ROOT / "third_party"
OUT_DIR = ROOT / "client" / "python"
PACKAGE_DIR = OUT_DIR / "orchestrator" / "v1"
# The mypy-protobuf plugins sit beside the interpreter, which may not be on PATH.
BIN_DIR = Path(sys.executable).parent
WELL_KNOWN = Path(grpc_tools.__file__).parent / "_proto"

INIT_TEXT = '"""Generated protobuf and gRPC stubs for orchestrator.v1 (make gen; do not edit)."""\n'


def generate(out_dir: Path) -> Path:
    """Generate every *_pb2 module of orchestrator.v1 into out_dir; return the package dir."""
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    package_dir = out_dir / "orchestrator" / "v1"
    if package_dir.exists():
        shutil.rmtree(package_dir)
    package_dir.mkdir(parents=True)
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{THIRD_PARTY}",
        f"-I{WELL_KNOWN}",
        f"--plugin=protoc-gen-mypy={BIN_DIR / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={BIN_DIR / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *protos,
    ]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    (package_dir / "__init__.py").write_text(INIT_TEXT)
    (package_dir / "py.typed").write_text("")
    # Modules of protos without services still get an (empty) _grpc file; drop those.
    for path in package_dir.glob("*_pb2_grpc.py*"):
        if "Stub" not in path.read_text():
            path.unlink()
    return package_dir


def drifted(expected: Path, actual: Path) -> list[str]:
    """Names of files that differ between two generated trees, or exist in only one."""
    cmp = filecmp.dircmp(expected, actual, ignore=["__pycache__"])
    names = [*cmp.left_only, *cmp.right_only, *cmp.diff_files]
    # dircmp compares by os.stat signature first; force a content comparison.
    names += [n for n in cmp.same_files if not filecmp.cmp(expected / n, actual / n, shallow=False)]
    return sorted(names)


def main() -> int:
    """Regenerate the stubs, or with --check fail if the committed ones differ."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    if not args.check:
        generate(OUT_DIR)
        print(f"generated Python stubs into {PACKAGE_DIR.relative_to(ROOT)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        names = drifted(fresh, PACKAGE_DIR)
    if names:
        print("generated Python stubs drifted from proto/ (run `make gen`):", *names, sep="\n  ")
        return 1
    print("Python stubs match proto/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
