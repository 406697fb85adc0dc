"""hack/testenv/testenv.py is a script, not a package; load it for tests of its helpers."""

from __future__ import annotations

import functools
import importlib.util
import sys
from types import ModuleType

from tests.support.cluster import TESTENV


@functools.cache
def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("duet_testenv", TESTENV / "testenv.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is created.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
