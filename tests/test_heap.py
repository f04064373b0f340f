"""The long-lived heap is frozen out of the garbage collector's reach, and freezing never keeps garbage
alive past the next change of models (service/models/heap.py, called by the model manager)."""

from __future__ import annotations

import gc
import shutil
import weakref
from pathlib import Path

import pytest

from batching import BatchingParameters
from service.models import heap
from service.models.model_config import ModelSource
from service.models.model_manager import ModelManager


class _Node:
    """Something that can sit in a reference cycle, which only the cyclic collector frees."""


@pytest.fixture(autouse=True)
def unfrozen_afterwards():
    yield
    gc.unfreeze()  # leave the rest of the test session's heap as it found it


def test_refreeze_frees_cycles_that_died_since_the_last_freeze() -> None:
    node = _Node()
    node.cycle = node
    alive = weakref.ref(node)
    heap.refreeze()
    del node
    gc.collect()
    assert alive() is not None, "a frozen cycle should be out of the ordinary collections' reach"
    heap.refreeze()
    assert alive() is None, "refreeze must collect frozen garbage before freezing again"


@pytest.fixture
def model_base(tmp_path: Path, tiny_model_base: Path) -> Path:
    base = tmp_path / "tiny"
    shutil.copytree(tiny_model_base / "1", base / "1")
    return base


async def test_loading_and_replacing_versions_refreezes_the_heap(model_base: Path, monkeypatch) -> None:
    gc.unfreeze()
    refreezes = []
    monkeypatch.setattr(heap, "refreeze", lambda real=heap.refreeze: refreezes.append(real()))
    cycle = _Node()
    cycle.cycle = cycle
    died_while_frozen = weakref.ref(cycle)
    models = ModelManager(BatchingParameters(max_batch_size=4))
    try:
        await models.add_model(ModelSource("tiny", model_base))  # freezes `cycle` with everything else
        first = models.get("tiny")
        frozen_with_first = gc.get_freeze_count()
        assert frozen_with_first > 10_000  # TensorFlow and the loaded graph: far more than this

        runtime = weakref.ref(first.runtime)
        del first, cycle
        gc.collect()
        assert died_while_frozen() is not None  # frozen: out of the ordinary collections' reach
        shutil.copytree(model_base / "1", model_base / "2")
        await models.poll()  # version 2 serves, version 1 unloads

        assert models.get("tiny").version == 2
        assert runtime() is None, "the unloaded version is still alive"
        assert died_while_frozen() is None, "the version change did not collect the frozen heap's garbage"
        assert 0 < gc.get_freeze_count() < 2 * frozen_with_first  # frozen again, version 1 not kept
        assert len(refreezes) == 2  # the first load, then the pass that loaded 2 and unloaded 1

        await models.poll()  # nothing on disk changed: no pause for a collection
        assert len(refreezes) == 2
    finally:
        await models.close()
