"""Generate the Go and TypeScript clients from proto/ (run by `make gen-polyglot`).

No arguments: write the generated code into client/go/orchestrator/v1 (protoc-gen-go and
protoc-gen-go-grpc) and client/ts/src/gen (ts-proto). With --check: generate into a
temporary directory and exit 1, listing the files, if the committed code differs.

The plugins are installed, at pinned versions, by `make polyglot-tools` into
client/go/.tools/bin and client/ts/node_modules. protoc itself is grpcio-tools' (pinned in
pyproject.toml); its version is printed in the generated headers, so it is part of the
output. Protos are passed by import path (orchestrator/v1/x.proto), so no absolute path
reaches the output.

Go: only orchestrator.v1 is generated; google/api/field_behavior.proto maps, by its
go_package, to google.golang.org/genproto/googleapis/api/annotations (required in
client/go/go.mod). TypeScript: ts-proto also writes the google/api and google/protobuf
files that orchestrator.v1 imports, which the TypeScript code needs.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
THIRD_PARTY = ROOT / "third_party"


def _well_known_protos() -> Path:
    """grpcio-tools' copy of google/protobuf/*.proto (found without importing the untyped
    grpc_tools package, so mypy --strict needs no override for it)."""
    spec = importlib.util.find_spec("grpc_tools")
    if spec is None or spec.origin is None:
        raise SystemExit("grpcio-tools is not installed: run `make install`")
    return Path(spec.origin).parent / "_proto"


WELL_KNOWN = _well_known_protos()

GO_DIR = ROOT / "client" / "go"
GO_MODULE = "github.com/agent-orchestrator/agent-orchestrator/client/go"
GO_PACKAGE_DIR = Path("orchestrator") / "v1"  # relative to the module root
GO_TOOLS = GO_DIR / ".tools" / "bin"

TS_DIR = ROOT / "client" / "ts"
TS_GEN_DIR = TS_DIR / "src" / "gen"
TS_PLUGIN = TS_DIR / "node_modules" / ".bin" / "protoc-gen-ts_proto"
# outputServices=grpc-js: typed @grpc/grpc-js client constructors and service definitions.
# esModuleInterop=true: default-import style that matches tsconfig's esModuleInterop.
# useOptionals=messages: message-typed fields are `field?: T` (unset is undefined), scalars
#   and repeated fields stay required with proto defaults; build requests with fromPartial.
# oneof=unions: a oneof is a discriminated union `{ $case: "textDelta"; textDelta: ... }`,
#   so `switch (event.event?.$case)` narrows the type.
# env=node: Buffer-based bytes, no browser shims.
# 64-bit integers stay `number` (ts-proto's default): ids and token counts fit in 2^53.
TS_PROTO_OPTIONS = [
    "outputServices=grpc-js",
    "esModuleInterop=true",
    "useOptionals=messages",
    "oneof=unions",
    "env=node",
]

INSTALL_HINT = "run `make polyglot-tools` first"


def protos() -> list[str]:
    """The orchestrator.v1 protos, by import path, in a stable order."""
    return sorted(p.relative_to(PROTO_DIR).as_posix() for p in PROTO_DIR.rglob("*.proto"))


def require(plugin: Path) -> Path:
    """Return plugin, or exit with a hint when it is not installed."""
    if not plugin.exists():
        raise SystemExit(f"{plugin.relative_to(ROOT)} is missing: {INSTALL_HINT}")
    return plugin


def protoc(*args: str) -> None:
    """Run grpcio-tools' protoc with the proto, third_party and well-known include paths."""
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{THIRD_PARTY}",
        f"-I{WELL_KNOWN}",
        *args,
        *protos(),
    ]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"protoc failed:\n{result.stderr}")


def generate_go(module_root: Path) -> Path:
    """Generate orchestrator.v1's Go code under module_root; return its package directory."""
    package_dir = module_root / GO_PACKAGE_DIR
    # Drop what an earlier run generated, so files of removed protos go too.
    for path in package_dir.glob("*.pb.go"):
        path.unlink()
    package_dir.mkdir(parents=True, exist_ok=True)
    protoc(
        f"--plugin=protoc-gen-go={require(GO_TOOLS / 'protoc-gen-go')}",
        f"--plugin=protoc-gen-go-grpc={require(GO_TOOLS / 'protoc-gen-go-grpc')}",
        f"--go_out={module_root}",
        f"--go_opt=module={GO_MODULE}",
        f"--go-grpc_out={module_root}",
        f"--go-grpc_opt=module={GO_MODULE}",
    )
    return package_dir


def generate_ts(gen_dir: Path) -> Path:
    """Generate the TypeScript code (and the google/* files it imports) into gen_dir."""
    if gen_dir.exists():
        shutil.rmtree(gen_dir)
    gen_dir.mkdir(parents=True)
    protoc(
        f"--plugin=protoc-gen-ts_proto={require(TS_PLUGIN)}",
        f"--ts_proto_out={gen_dir}",
        f"--ts_proto_opt={','.join(TS_PROTO_OPTIONS)}",
    )
    return gen_dir


def files(root: Path, pattern: str) -> dict[str, bytes]:
    """Contents of the files under root that match pattern, by relative path."""
    if not root.is_dir():
        return {}
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob(pattern))
        if p.is_file()
    }


def drifted(expected: dict[str, bytes], actual: dict[str, bytes]) -> list[str]:
    """Paths that differ between two generated trees, or exist in only one."""
    return sorted(p for p in expected.keys() | actual.keys() if expected.get(p) != actual.get(p))


@dataclass(frozen=True)
class Target:
    """One generated client."""

    name: str
    generate: Callable[[Path], Path]
    out: Path  # what generate writes under: the Go module root, the TS gen directory
    committed: Path  # the directory of committed generated files
    pattern: str  # the generated files in it


TARGETS = [
    Target("Go", generate_go, GO_DIR, GO_DIR / GO_PACKAGE_DIR, "*.pb.go"),
    Target("TypeScript", generate_ts, TS_GEN_DIR, TS_GEN_DIR, "*.ts"),
]


def main() -> int:
    """Regenerate the Go and TypeScript clients, or with --check fail if they drifted."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    if not args.check:
        for target in TARGETS:
            written = target.generate(target.out)
            print(f"generated {target.name} client into {written.relative_to(ROOT)}")
        return 0
    names: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for target in TARGETS:
            fresh = target.generate(Path(tmp) / target.name)
            diff = drifted(files(fresh, target.pattern), files(target.committed, target.pattern))
            names += [(target.committed / p).relative_to(ROOT).as_posix() for p in diff]
    if names:
        header = "generated Go/TypeScript code drifted from proto/ (run `make gen-polyglot`):"
        print(header, *names, sep="\n  ")
        return 1
    print("Go and TypeScript clients match proto/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
