"""A run that names its PostgreSQL fails without it; only a run that does not skips."""

import pytest

from conftest import pg_unavailable


def test_a_required_postgres_that_is_missing_fails_the_test():
    with pytest.raises(pytest.fail.Exception, match="LATCHKEY_TEST_PG_URL is set but no PostgreSQL"):
        pg_unavailable(True, "no PostgreSQL reachable at postgres://127.0.0.1:1/test")


def test_an_optional_postgres_that_is_missing_skips_loudly():
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL tests did NOT run"):
        pg_unavailable(False, "no PostgreSQL reachable at postgres://127.0.0.1:1/test")
