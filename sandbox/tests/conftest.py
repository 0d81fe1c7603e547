from collections.abc import Iterator

import pytest

from sandbox.testing import SandboxProcess


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxProcess]:
    """One sandbox process (seed 7, default config) shared by a test session."""
    with SandboxProcess(seed=7) as sb:
        yield sb
