"""Database accounts as specified: least privilege in MySQL, and in MongoDB (engine mongodb)
no writes for the application after stage 3."""

from __future__ import annotations

import os

import pytest

from conftest import var

APP = {"SELECT", "INSERT", "UPDATE", "DELETE"}
MIGRATE = APP | {"CREATE", "ALTER", "DROP", "INDEX", "REFERENCES"}


def _grants(host, user: str, account_host: str) -> list[str]:
    out = host.run(f"mariadb -N -B -e \"SHOW GRANTS FOR '{user}'@'{account_host}'\"")
    assert out.rc == 0, f"{user}@{account_host}: {out.stderr}"
    return out.stdout.splitlines()


def _privileges(grant: str) -> set[str]:
    # GRANT SELECT, INSERT ON `lazyshift`.* TO ...
    return {p.strip() for p in grant.split(" ON ", 1)[0].removeprefix("GRANT ").split(",")}


@pytest.mark.parametrize(
    ("user_var", "default_user", "expected"),
    [
        ("lazyshift_mysql_app_user", "lazyshift_app", APP),
        ("lazyshift_mysql_migrate_user", "lazyshift_migrate", MIGRATE),
    ],
)
def test_mysql_accounts_have_only_their_privileges(mysql_host, user_var, default_user, expected):
    user = var(mysql_host, user_var, default_user)
    database = var(mysql_host, "lazyshift_mysql_database", "lazyshift")
    for account_host in var(mysql_host, "lazyshift_mysql_client_hosts", ["localhost", "127.0.0.1"]):
        grants = _grants(mysql_host, user, account_host)
        on_db = [g for g in grants if f" ON `{database}`.* " in g]
        global_ = [g for g in grants if " ON *.* " in g]
        assert len(on_db) == 1 and _privileges(on_db[0]) == expected, grants
        assert all(_privileges(g) == {"USAGE"} for g in global_), f"global privileges: {grants}"
        assert len(on_db) + len(global_) == len(grants), f"grants elsewhere: {grants}"


def test_mongodb_app_user_cannot_write_after_stage_3(mongodb_host):
    """Engine mongodb only (FerretDB has no roles: lazyshift refuses the writes itself, see the
    role README). After stage 3 (revoke_write) the application's insert is refused by MongoDB;
    before it, the application user has readWrite."""
    engine = var(mongodb_host, "lazyshift_mongodb_engine", "mongodb")
    if engine != "mongodb":
        assert not mongodb_host.file("/usr/bin/mongod").exists
        return
    data_dir = var(mongodb_host, "lazyshift_mongodb_data_dir", "/var/lib/mongodb")
    read_only = mongodb_host.file(f"{data_dir}/.lazyshift-read-only").exists
    address = var(mongodb_host, "lazyshift_mongodb_listen_host", "127.0.0.1")
    port = var(mongodb_host, "lazyshift_mongodb_port", 27017)
    user = var(mongodb_host, "lazyshift_mongodb_app_user", "lazyshift_app")
    database = var(mongodb_host, "lazyshift_mongodb_database", "lazyshift")
    # The application's own insert, as the application logs in (password from the environment,
    # as the roles take it).
    script = (
        "import sys, pymongo, pymongo.errors\n"
        f"c = pymongo.MongoClient('{address}', {port}, username='{user}', "
        f"password=sys.stdin.read().strip(), authSource='{database}')\n"
        "try:\n"
        f"    c['{database}']['lazyshift_hosttest'].insert_one({{'probe': 1}})\n"
        f"    c['{database}']['lazyshift_hosttest'].drop()\n"
        "    print('written')\n"
        "except pymongo.errors.OperationFailure as exc:\n"
        "    print('refused', exc.code)\n"
    )
    out = mongodb_host.run(
        "printf %s %s | python3 -c %s", os.environ["LAZYSHIFT_MONGODB_APP_PASSWORD"], "", script
    )
    assert out.rc == 0, out.stderr
    assert out.stdout.split()[0] == ("refused" if read_only else "written"), out.stdout
