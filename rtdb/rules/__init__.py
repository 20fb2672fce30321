"""Firebase security rules: load, type-check and compile a rules file once;
decide reads, writes and multi-path updates with an explanation."""

from rtdb.rules.errors import RulesError
from rtdb.rules.ruleset import Decision, Ruleset
from rtdb.rules.snapshot import DataView

__all__ = ["DataView", "Decision", "RulesError", "Ruleset"]
