"""ECR's lifecycle policy evaluator, as the ECR user guide describes it.

The sources (the package's table repeats them): ECR guide "Lifecycle policy properties"
(``rulePriority``: applied lowest first; ``tagStatus`` tagged, untagged, any;
``tagPrefixList`` / ``tagPatternList``; ``countType`` imageCountMoreThan or sinceImagePushed
with ``countUnit`` days; ``action`` expire), "Automate the cleanup of images by using lifecycle
policies in Amazon ECR" (its "Lifecycle policy evaluation rules": an image is expired by exactly
one or zero rules; an image that matches the tagging requirements of a higher priority rule
cannot be expired by a rule with a lower priority; rules still identify images a higher rule
marked; expiry ordered by push time, older first; a prefix or pattern list matches when each of
its entries matches one of the image's tags), and "Examples of lifecycle policies in Amazon ECR"
("Filtering on multiple rules", "Filtering on multiple tags in a single rule", whose outcomes
the unit tests check).

Not modelled (a rule of these kinds marks nothing here): ``sinceImagePulled`` and
``sinceImageTransitioned`` counts, the archive storage class and the ``transition`` action.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["DAY", "Image", "expired", "pattern_matches"]

DAY = 86400.0


@dataclass(frozen=True)
class Image:
    """One image of a repository: its digest, its tags (none: untagged), when it was pushed."""

    digest: str
    tags: tuple[str, ...]
    pushed: float


def pattern_matches(pattern: str, tag: str) -> bool:
    """A ``tagPatternList`` entry against one tag: ``*`` is any run of characters, the rest
    literal, the whole tag (the guide: ``prod*`` matches ``prod``, ``prod1``; ``*prod*`` any tag
    containing ``prod``)."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, tag) is not None


def _selects(selection: dict[str, Any], image: Image) -> bool:
    """Whether the rule's tagging requirements select ``image``."""
    status = selection.get("tagStatus")
    if status == "any":
        return True
    if status == "untagged":
        return not image.tags
    if status != "tagged" or not image.tags:
        return False
    prefixes = selection.get("tagPrefixList") or []
    patterns = selection.get("tagPatternList") or []
    if prefixes:  # every prefix matched against any of the image's tags
        return all(any(t.startswith(p) for t in image.tags) for p in prefixes)
    if patterns:
        return all(any(pattern_matches(p, t) for t in image.tags) for p in patterns)
    return False  # tagged without a list: PutLifecyclePolicy refuses such a rule


def _marks(selection: dict[str, Any], matched: list[Image], now: float) -> list[Image]:
    """The images the rule's count marks among those it selects, oldest first."""
    number = int(selection.get("countNumber") or 0)
    oldest_first = sorted(matched, key=lambda i: i.pushed)
    if selection.get("countType") == "imageCountMoreThan":
        # youngest to oldest, every image past the count
        return oldest_first[: max(len(matched) - number, 0)]
    if selection.get("countType") == "sinceImagePushed" and selection.get("countUnit") == "days":
        return [i for i in oldest_first if now - i.pushed > number * DAY]
    return []  # not modelled (see the module doc)


def expired(policy: str | dict[str, Any], images: list[Image], now: float) -> dict[str, int]:
    """What one evaluation of ``policy`` (its JSON text or parsed) expires among ``images`` at
    ``now``: digest -> the ``rulePriority`` of the one rule that expires it."""
    document = json.loads(policy) if isinstance(policy, str) else policy
    rules = sorted(document.get("rules") or [], key=lambda r: int(r.get("rulePriority", 0)))
    out: dict[str, int] = {}
    seen: set[str] = set()  # images a higher priority rule's tagging requirements matched
    for rule in rules:
        selection = rule.get("selection") or {}
        matched = [i for i in images if _selects(selection, i)]
        if (rule.get("action") or {}).get("type") == "expire":
            for image in _marks(selection, matched, now):
                if image.digest not in out and image.digest not in seen:
                    out[image.digest] = int(rule.get("rulePriority", 0))
        seen |= {i.digest for i in matched}
    return out
