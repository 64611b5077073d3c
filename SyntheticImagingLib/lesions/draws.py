"""New lesion labels on a trained generator's anatomy backgrounds, drawn ahead of the network.

A trained generator renders a label in milliseconds on a GPU, but drawing a new lesion label (shape, placement,
distance fields) takes ~0.05 s of one CPU core at 128^3. :func:`draw_labels` therefore draws them in the
background, in order: in a thread of this process (``workers=0``: overlaps the network) or in ``workers`` worker
processes (for GPUs that render faster than one core draws). Each case has its own random stream (its seed is
drawn from the synthesis seed in order), so the cases do not depend on how many workers drew them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..anatomy import decode_head_masks
from ..background import ordered_map, prefetch
from ..cases import Geometry
from ..label_roles import LabelRoles
from .compose import make_lesion_label
from .controls import LesionControls

__all__ = ["LesionDrawer", "LesionJob", "draw_labels", "lesion_jobs"]


@dataclasses.dataclass(frozen=True)
class LesionJob:
    """One case to draw: its index, the anatomy reference it uses and its own random seed."""

    index: int
    reference: int
    seed: int


def lesion_jobs(n: int, n_references: int, seed: int) -> Iterator[LesionJob]:
    """The ``n`` jobs of a synthesis run: references and per-case seeds drawn in order from ``seed``."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        yield LesionJob(index=i, reference=int(rng.integers(n_references)), seed=int(rng.integers(2**63)))


@dataclasses.dataclass
class LesionDrawer:
    """Draws the lesion label of a :class:`LesionJob` (picklable: worker processes get one copy each).

    Args:
        references: anatomy backgrounds (brain mask, geometry) on the model grid.
        controls: what lesions to draw.
        head_anatomy: CT: encoded head masks (skull, ventricles, inner table) per reference; [] otherwise.
        templates: real lesion masks usable as shapes.
        heads: decoded head masks by reference index (a cache; shared with the generator in this process).
        roles: the task's label roles (new labels use the user's values and sub-regions); None: library values.
        fractions: tumour sub-region share ranges when the controls give none (e.g. measured on training cases).
    """

    references: Sequence[tuple[np.ndarray, Geometry]]
    controls: LesionControls
    head_anatomy: Sequence[tuple[np.ndarray, Geometry]] = ()
    templates: Sequence[tuple[np.ndarray, Geometry]] = ()
    heads: dict[int, Any] = dataclasses.field(default_factory=dict)
    roles: LabelRoles | None = None
    fractions: Mapping[str, tuple[float, float]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "heads": {}}  # workers decode their own (decoded masks are large)

    def anatomy(self, k: int) -> Any:
        """Where new lesions of reference ``k`` may go: its brain mask, or on CT its decoded head masks."""
        brain, geometry = self.references[k]
        if not self.head_anatomy:
            return brain
        if k not in self.heads:
            self.heads[k] = decode_head_masks(self.head_anatomy[k][0], geometry)
        return self.heads[k]

    def __call__(self, job: LesionJob) -> tuple[LesionJob, np.ndarray, Any, Any]:
        """``(job, int16 label, label table, per-lesion info)``."""
        _, geometry = self.references[job.reference]
        templates = list(self.templates) if self.controls.use_templates else []
        label, table, infos = make_lesion_label(self.anatomy(job.reference), geometry, self.controls,
                                                rng=np.random.default_rng(job.seed), templates=templates,
                                                roles=self.roles, fractions=self.fractions)
        return job, label, table, infos


_WORKER_DRAWER: LesionDrawer | None = None


def _start_worker(drawer: LesionDrawer) -> None:
    global _WORKER_DRAWER
    _WORKER_DRAWER = drawer


def _draw_in_worker(job: LesionJob) -> tuple[LesionJob, np.ndarray, Any, Any]:
    assert _WORKER_DRAWER is not None
    return _WORKER_DRAWER(job)


def draw_labels(drawer: LesionDrawer, jobs: Sequence[LesionJob], *, workers: int = 0,
                depth: int = 2) -> Generator[tuple[LesionJob, np.ndarray, Any, Any], None, None]:
    """Draw the jobs' labels in the background and yield them in job order.

    Args:
        drawer: what to draw on.
        jobs: the cases, in order.
        workers: 0: one background thread of this process; N: N spawned worker processes (each gets the anatomy
            once).
        depth: how many drawn labels may wait for the consumer (per worker with processes).

    Raises:
        whatever a draw raises (e.g. a lesion that does not fit), at that job.
    """
    if workers <= 0:
        return prefetch((drawer(job) for job in jobs), depth=depth)
    return ordered_map(_draw_in_worker, jobs, workers=workers, depth=depth, initializer=_start_worker,
                       initargs=(drawer,))
