"""The grader's patches of nbgrader: all listed in one place, and refused loudly when nbgrader
no longer has what they replace."""

import importlib

import pytest

from grader.instructor import patches


def test_every_patched_attribute_exists_in_the_pinned_nbgrader():
    patches.check()


@pytest.mark.parametrize("module, path", patches.PATCHED, ids=lambda v: str(v))
def test_a_missing_attribute_is_named(monkeypatch, module, path):
    owner = importlib.import_module(module)
    *parents, name = path.split(".")
    for part in parents:
        owner = getattr(owner, part)
    monkeypatch.delattr(owner, name)
    with pytest.raises(patches.PatchError, match=name):
        patches.check()


def test_nbgraders_version_is_capped_where_the_patches_were_checked(root):
    text = (root / "pyproject.toml").read_text()
    assert '"nbgrader>=0.9,<0.10"' in text
