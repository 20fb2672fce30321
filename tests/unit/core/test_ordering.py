import json
import random
from pathlib import Path

from rtdb.core.ordering import key_order, key_sort_bytes, value_order, value_sort_bytes

SORTED = json.loads((Path(__file__).parents[2] / "cases/core/key_order.json").read_text())["sorted"]


def test_keys_sort_in_firebase_name_order() -> None:
    for expected in SORTED:
        shuffled = list(expected)
        random.Random(1).shuffle(shuffled)
        assert sorted(shuffled, key=key_order) == expected


def test_key_sort_bytes_order_like_key_order() -> None:
    for expected in SORTED:
        assert sorted(expected, key=key_sort_bytes) == expected


def test_values_rank_null_false_true_numbers_strings_objects() -> None:
    values = [None, False, True, -1e300, -2, -0.5, 0, 0.25, 3, 1e300, "", "A", "a", "ab", "b", {"x": 1}]
    shuffled = list(values)
    random.Random(2).shuffle(shuffled)
    assert sorted(shuffled, key=value_order) == values
    assert sorted(shuffled, key=value_sort_bytes) == values
