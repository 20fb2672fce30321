"""Copy-on-write node trees: shared nodes never change, owned ones are reused."""

from __future__ import annotations

from rtdb_sdk.nodetree import NodeTree, get_node, set_node


def test_set_node_shares_untouched_subtrees_and_prunes_empty_parents() -> None:
    base = {"a": {"x": 1}, "b": {"y": {"z": 2}}}
    out = set_node(base, ("a", "x"), 5)
    assert out == {"a": {"x": 5}, "b": {"y": {"z": 2}}}
    assert out["b"] is base["b"] and base["a"] == {"x": 1}
    assert set_node(base, ("b", "y", "z"), None) == {"a": {"x": 1}}
    assert set_node({"only": 1}, ("only",), None) is None
    assert set_node("leaf", ("k",), 1) == {"k": 1}
    assert set_node({".value": "leaf", ".priority": 3}, ("k",), 1) == {"k": 1, ".priority": 3}
    assert set_node({"a": 1}, ("a", ".priority"), 7) == {"a": {".value": 1, ".priority": 7}}


def test_a_shared_node_is_copied_not_changed() -> None:
    tree = NodeTree({"list": {"a": 1}})
    tree.set(("list", "b"), 2)
    snapshot = tree.share(("list",))
    assert snapshot == {"a": 1, "b": 2}
    tree.set(("list", "c"), 3)
    tree.set(("list", "a"), None)
    assert snapshot == {"a": 1, "b": 2}
    assert tree.get(("list",)) == {"b": 2, "c": 3}


def test_owned_nodes_are_mutated_in_place() -> None:
    tree = NodeTree()
    tree.set(("list", "a"), 1)
    first = tree.get(("list",))
    tree.set(("list", "b"), 2)
    assert tree.get(("list",)) is first  # no copy: nobody else holds it


def test_sharing_a_parent_protects_its_owned_children() -> None:
    tree = NodeTree()
    tree.set(("a", "b", "c"), 1)
    parent = tree.share(("a",))
    tree.set(("a", "b", "c"), 2)
    assert parent == {"b": {"c": 1}}
    assert get_node(tree.root, ("a", "b", "c")) == 2


def test_merge_and_deletes_prune_to_none() -> None:
    tree = NodeTree({"r": {"x": 1, "y": 2}})
    tree.merge(("r",), {("x",): None, ("y",): None})
    assert tree.root is None
