from rtdb.core.ordering import key_order
from rtdb.core.pushid import PUSH_CHARS, PushIdGenerator


def test_push_ids_are_20_chars_of_the_alphabet_and_start_with_the_time() -> None:
    gen = PushIdGenerator()
    pid = gen.next(1_700_000_000_000)
    assert len(pid) == 20 and set(pid) <= set(PUSH_CHARS)
    t = 0
    for ch in pid[:8]:
        t = t * 64 + PUSH_CHARS.index(ch)
    assert t == 1_700_000_000_000


def test_push_ids_within_one_millisecond_strictly_increase() -> None:
    gen = PushIdGenerator()
    ids = [gen.next(1_700_000_000_000) for _ in range(5000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert sorted(ids, key=key_order) == ids


def test_push_ids_increase_with_time() -> None:
    gen = PushIdGenerator()
    ids = [gen.next(1_700_000_000_000 + i) for i in range(100)]
    assert ids == sorted(ids)
