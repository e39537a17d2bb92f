"""`generation_args`: which of a mock source's arguments shape its log (what `dump` replays)."""

from lazyshift.dev.expected import generation_args


def test_keeps_generation_flags_and_drops_the_rest() -> None:
    args = ["--seed", "7", "--rate", "500", "--count", "100", "--port", "0"]
    assert generation_args(args) == ["--seed", "7", "--count", "100"]


def test_a_boolean_flag_anywhere_shifts_nothing() -> None:
    # It used to pair every flag with the next item, so a boolean flag before --seed made
    # "--seed" the flag's value and "7" a flag: the dump replayed another log.
    for boolean_at in range(0, 5, 2):
        args = ["--seed", "7", "--count", "100"]
        args.insert(boolean_at, "--clock-from-subscribe")
        assert generation_args(args) == ["--seed", "7", "--count", "100"], args


def test_flag_equals_value_form() -> None:
    assert generation_args(["--seed=9", "--rate=5", "--count", "3"]) == [
        "--seed",
        "9",
        "--count",
        "3",
    ]
