"""`orchestrator create-api-key`: the operator's way to the first admin key of a tenant.

With authentication on, API keys are created through the API by a tenant's admin; the
first admin needs a key before there is one to call with. The operator, who can read the
database file, creates it directly (like a database's first superuser).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from .core.access import AccessRole, Caller, acting_as
from .core.access_port import AccessStore
from .core.api_keys import ApiKeys
from .core.pagination import PageTokens
from .store.pg_access import PostgresAccessStore
from .store.postgres import PostgresStore
from .store.sqlite import SQLiteStore
from .store.sqlite_access import SQLiteAccessStore
from .store_setup import check_db, is_postgres


async def create_key(db: str, tenant: str, roles: list[str], name: str) -> tuple[str, str]:
    """Create a key in the database (a SQLite file or a PostgreSQL URL); returns its id
    and secret."""
    store: SQLiteStore | PostgresStore
    access: AccessStore
    check_db(db)
    if is_postgres(db):
        store = PostgresStore(db, replica=False)
        access = PostgresAccessStore(store)
    else:
        store = SQLiteStore(db)
        access = SQLiteAccessStore(store)
    await store.open()
    try:
        keys = ApiKeys(access, PageTokens(await store.page_token_secret()))
        operator = Caller("operator", tenant, frozenset({AccessRole.ADMIN}))
        with acting_as(operator):
            key, secret = await keys.create(tenant, name, roles, None)
        return key.key_id, secret
    finally:
        await store.close()


def add_bootstrap_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `create-api-key`."""
    parser = subparsers.add_parser(
        "create-api-key",
        help="create an API key directly in the database (the first admin of a tenant)",
    )
    parser.add_argument(
        "--db", default="orchestrator.db", help="the server's SQLite file or postgresql:// URL"
    )
    parser.add_argument("--tenant", required=True)
    parser.add_argument(
        "--role", action="append", choices=[r.value for r in AccessRole], required=True
    )
    parser.add_argument("--name", default="bootstrap", help="what the key is for")
    parser.set_defaults(handler=run_create_key)


def run_create_key(args: argparse.Namespace) -> int:
    """Print the new key's secret (once) on stdout, its id on stderr."""
    try:
        key_id, secret = asyncio.run(create_key(args.db, args.tenant, args.role, args.name))
    except Exception as error:
        sys.stderr.write(f"orchestrator: {error}\n")
        return 1
    sys.stderr.write(f"created API key {key_id} for tenant {args.tenant}\n")
    sys.stdout.write(secret + "\n")
    return 0
