"""The layers import each other one way only (ports and adapters):

- `core/` is plain Python: nothing from the adapters (api, store, models, tools), the
  composition root (server, config, cli, metrics), protobuf, gRPC, SQL or HTTP clients.
- `store/`, `models/`, `tools/` implement core's ports: from this package they import
  only `core`, and never protobuf or gRPC.
- `api/` is the only layer that touches protobuf and gRPC, besides the composition root.
- The development model server is a separate tool: the server and it never import each
  other, except the composition root starting it (`server.py`).
"""

from __future__ import annotations

import ast
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[2] / "service"
PACKAGE = "orchestrator_server"
WIRE = ("grpc", "grpc_status", "grpc_health", "google.protobuf", "google.rpc", "orchestrator")
IO_CLIENTS = ("sqlite3", "sqlite_utils", "openai", "httpx", "httpx2", "mcp", "anyio", "uvicorn")

LAYERS = ("api", "store", "models", "tools", "server", "config", "cli", "metrics")


def others(*allowed: str) -> tuple[str, ...]:
    """This package's layers and root modules, but for `allowed` (and `core`)."""
    return tuple(f"{PACKAGE}.{layer}" for layer in LAYERS if layer not in allowed)


# layer -> prefixes it must not import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "core": (*others(), "orchestrator_devmodel", *WIRE, *IO_CLIENTS),
    "store": (*others("store"), "orchestrator_devmodel", *WIRE),
    "models": (*others("models"), "orchestrator_devmodel", *WIRE),
    "tools": (*others("tools"), "orchestrator_devmodel", *WIRE),
    "api": (*others("api"), "orchestrator_devmodel"),
    "devmodel": (PACKAGE, "orchestrator"),
}


def imported_modules(path: Path, module: str) -> list[str]:
    """Absolute names of everything `path` (the module `module`) imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base)
                target = f"{prefix}.{node.module}" if node.module else prefix
                names += [target] if node.module else [f"{prefix}.{a.name}" for a in node.names]
            else:
                names.append(node.module or "")
    return names


def layer_of(module: str) -> str | None:
    """Which layer a module of the service belongs to (None: the composition root)."""
    parts = module.split(".")
    if parts[0] == "orchestrator_devmodel":
        return "devmodel"
    if len(parts) > 2 and parts[1] in ("core", "store", "models", "tools", "api"):
        return parts[1]
    return None


def violations(module: str, imports: list[str]) -> list[str]:
    """The imports of `module` that break its layer's rule."""
    layer = layer_of(module)
    if layer is None:
        return []
    return [
        f"{module} imports {name}"
        for name in imports
        for banned in FORBIDDEN[layer]
        if name == banned or name.startswith(banned + ".")
    ]


def service_modules() -> list[tuple[str, Path]]:
    modules = []
    for path in sorted(SERVICE.rglob("*.py")):
        parts = path.relative_to(SERVICE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules.append((name, path))
    return modules


def test_every_layer_imports_only_what_its_rule_allows() -> None:
    found = [
        v
        for name, path in service_modules()
        for v in violations(name, imported_modules(path, name))
    ]
    assert found == []


def test_the_rule_catches_wrong_way_imports(tmp_path: Path) -> None:
    sneaky = tmp_path / "runs.py"
    sneaky.write_text(
        "from ..store.sqlite import SQLiteStore\nimport grpc\nfrom ..api import handlers\n"
    )
    found = violations(
        "orchestrator_server.core.runs",
        imported_modules(sneaky, "orchestrator_server.core.runs"),
    )
    assert found == [
        "orchestrator_server.core.runs imports orchestrator_server.store.sqlite",
        "orchestrator_server.core.runs imports grpc",
        "orchestrator_server.core.runs imports orchestrator_server.api",
    ]
    adapter = tmp_path / "sqlite.py"
    adapter.write_text("from orchestrator.v1 import run_pb2\nfrom ..core.types import Run\n")
    name = "orchestrator_server.store.sqlite"
    assert violations(name, imported_modules(adapter, name)) == [f"{name} imports orchestrator.v1"]


def test_every_service_module_was_checked() -> None:
    layers = {layer_of(name) for name, _ in service_modules()}
    assert {"core", "store", "models", "tools", "api", "devmodel"} <= layers
