from __future__ import annotations

import pytest

from resync_site.lib.env import EnvError, env_bool, env_choice, env_int, env_list, env_url


def test_typed_readers_parse_and_default():
    env = {"A": " 42 ", "B": "yes", "C": "a, b,,c", "D": "postgres://x"}
    assert env_int("A", 1, environ=env) == 42
    assert env_int("MISSING", 7, environ=env) == 7
    assert env_bool("B", False, environ=env) is True
    assert env_list("C", environ=env) == ["a", "b", "c"]
    assert env_url("D", schemes=("postgres",), environ=env) == "postgres://x"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: env_int("N", 1, environ={"N": "ten"}), "N='ten' is not an integer"),
        (lambda: env_int("N", 1, minimum=1, environ={"N": "0"}), "N=0 is below the minimum 1"),
        (lambda: env_bool("F", False, environ={"F": "maybe"}), "F='maybe' is not a boolean"),
        (lambda: env_choice("M", "a", ("a", "b"), environ={"M": "c"}), "M='c' must be one of: a, b"),
        (lambda: env_url("U", schemes=("redis",), environ={"U": "http://x"}), "U must be a URL starting with one of: redis://"),
    ],
)
def test_bad_values_fail_with_the_variable_named(call, message):
    with pytest.raises(EnvError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()
