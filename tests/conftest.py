"""Session settings for mamba-ssm's own modules on CPU (tests/mamba_ssm_cpu.py), which must come before any test
module imports triton, and mamba-ssm kept to the test modules that use it."""

import pytest

import mamba_ssm_cpu

mamba_ssm_cpu.prepare_session()


@pytest.fixture(autouse=True, scope="module")
def _mamba_ssm_only_where_used():
    yield
    mamba_ssm_cpu.unload()
