"""expspan: long-context fine-tuning of hybrid state-space models (SE-Attn, HyLoRA and baselines).

Importing the package registers the attention variants with transformers (`attn_implementation="expspan_se"`,
"expspan_swa", "expspan_s2", "expspan_full"). Registration waits until transformers' modeling code is imported, so
the command line stays instant and nothing is imported that the user did not import already.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

_TRIGGER = "transformers.modeling_utils"


def _register() -> None:
    from expspan_cli.attention.hf import register

    register()


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Runs `_register` right after transformers.modeling_utils (where AttentionInterface lives) is executed."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _TRIGGER:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            _register()

        spec.loader.exec_module = exec_module
        return spec


if _TRIGGER in sys.modules:
    _register()
elif not any(isinstance(f, _RegisterAfterImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterImport())
