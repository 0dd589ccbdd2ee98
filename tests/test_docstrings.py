"""Every docstring example in the package runs and prints what it shows.

The house style asks for a runnable example in each public docstring; this
runs them all (`doctest`), one test per module that has examples.
"""

import doctest
import importlib
import io
import pkgutil

import pytest

import fewshot

_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules_with_examples():
    names = []
    for info in pkgutil.walk_packages(fewshot.__path__, "fewshot."):
        module = importlib.import_module(info.name)
        if any(test.examples for test in doctest.DocTestFinder().find(module)):
            names.append(info.name)
    return sorted(names)


MODULES = _modules_with_examples()


def test_the_examples_are_found():
    for name in ("fewshot.algorithms.maml", "fewshot.algorithms.protonet", "fewshot.models.batch_norm"):
        assert name in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=_FLAGS)
    for test in doctest.DocTestFinder().find(module):
        runner.run(test, out=out.write)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0
    assert result.failed == 0, out.getvalue()
