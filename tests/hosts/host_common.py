"""What lazyshift_common gives every host: the service account that cannot log in, and the
configuration folder closed to others (its files hold passwords)."""

from __future__ import annotations

from conftest import var


def test_lazyshift_account_is_a_system_user_without_login(any_host):
    name = str(var(any_host, "lazyshift_common_user", "lazyshift"))
    user = any_host.user(name)
    assert user.exists, f"no user {name}"
    assert user.uid < 1000, f"{name} is not a system user (uid {user.uid})"
    assert user.shell in ("/usr/sbin/nologin", "/bin/false"), f"{name} logs in: {user.shell}"


def test_lazyshift_folders(any_host):
    group = str(var(any_host, "lazyshift_common_group", "lazyshift"))
    expected = {
        str(var(any_host, "lazyshift_common_home", "/opt/lazyshift")): 0o755,
        str(var(any_host, "lazyshift_common_config_dir", "/etc/lazyshift")): 0o750,
        str(var(any_host, "lazyshift_common_state_dir", "/var/lib/lazyshift")): 0o750,
    }
    for path, mode in expected.items():
        f = any_host.file(path)
        assert f.is_directory, f"{path} missing"
        assert (f.user, f.group, f.mode) == ("root", group, mode), (
            f"{path}: {f.user}:{f.group} {oct(f.mode)}, expected root:{group} {oct(mode)}"
        )
