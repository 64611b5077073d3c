"""One synthetic set pooled from several generators' sets, an equal share of each.

Two appearance models in one training set can be worth more than either alone: on the project's external test
(BENCHMARKS.md, both directions pooled, 16 unseen cases), 10 ``gan3d`` + 10 lesion-insertion (``fill``) cases
added to the real cases beat the real cases alone beyond the CI, where neither family's 20 cases did. Each family
transferred better in one direction, and the pool kept both gains. Rank the pooled set beside its parts
(``evaluate --synthetic a b pooled``): whether it helps depends on the data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .cases import Case
from .errors import InputError

__all__ = ["pool_shares", "pool_synthetic_sets"]


def pool_shares(n: int, parts: int) -> list[int]:
    """Cases taken from each of ``parts`` sets for a pooled set of ``n``: equal, the first sets take the remainder.

    Args:
        n: cases in the pooled set.
        parts: number of sets pooled.

    Example:
        >>> pool_shares(20, 3)
        [7, 7, 6]
    """
    return [n // parts + (i < n % parts) for i in range(parts)]


def pool_synthetic_sets(sets: Mapping[str, Sequence[Case]], *, n: int | None = None) -> list[Case]:
    """The first cases of each set, an equal share of each (:func:`pool_shares`), in one list.

    A pooled case keeps its image, label, geometry and metadata (so the provenance the checks read, e.g. the
    background patient of a lesion-insertion case, still keeps its patient out of a k-fold test fold); its id is
    prefixed with its set's name (every family numbers its cases alike) and ``metadata["pooled_from"]`` names the
    set.

    Args:
        sets: set name -> its synthetic cases (a list or a lazy ``Dataset``: only the cases taken are read), two
            sets or more; the names become case-id prefixes.
        n: cases in the pooled set; default: as many as the smallest set, so that the pool is compared with its
            parts at the same size.

    Raises:
        InputError: fewer than two sets, an empty set, a set too small for its share, or sets that differ in
            channels, modality, lesion kind or label table (the message names the set and what differs).
    """
    if len(sets) < 2:
        raise InputError(f"pooling needs two synthetic sets or more, got {len(sets)}",
                         fix="give the sets to pool, e.g. one from gan3d and one from lesion-insertion")
    for name, cases in sets.items():
        if not cases:
            raise InputError(f"synthetic set {name!r} has no cases", fix="synthesize cases into it first")
    size = min(len(c) for c in sets.values()) if n is None else n
    if size < len(sets):
        raise InputError(f"a pooled set of {size} cases cannot take a case from each of {len(sets)} sets",
                         fix=f"ask for at least {len(sets)} cases")
    # index only the cases taken: a lazy Dataset then reads n volumes, not every set whole
    taken: dict[str, list[Case]] = {}
    for (name, cases), share in zip(sets.items(), pool_shares(size, len(sets))):
        if len(cases) < share:
            raise InputError(f"synthetic set {name!r} has {len(cases)} cases; the pool takes {share} from it",
                             fix=f"ask for at most {len(cases) * len(sets)} cases, or synthesize more into it")
        taken[name] = [cases[i] for i in range(share)]
    first_name, (ref, *_) = next(iter(taken.items()))
    for name, (case, *_) in taken.items():
        for what, mine, theirs in (("channels", case.channel_names, ref.channel_names),
                                   ("modality", case.modality.value, ref.modality.value),
                                   ("lesion kind", case.lesion_kind.value, ref.lesion_kind.value),
                                   ("label table", case.label_table.to_dict(), ref.label_table.to_dict())):
            if mine != theirs:
                raise InputError(f"synthetic set {name!r} differs from {first_name!r} in its {what}: {mine} vs "
                                 f"{theirs}", fix="pool sets made for the same task, channels and labels")
    return [c.replace(case_id=f"{name}_{c.case_id}", metadata={**c.metadata, "pooled_from": name})
            for name, picked in taken.items() for c in picked]
