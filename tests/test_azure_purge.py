"""The ACR fake's ``acr purge``, flag by flag, against Azure/acr-cli's source (cmd/acr/purge.go,
cmd/repository/image_functions.go) and its own tests (cmd/acr/purge_test.go): what one run
selects from a repository's tags and manifests, with times the test gives (no registry, no
clock). The same selection runs on the sandbox's registries in test_azure_retention.py."""

from __future__ import annotations

import datetime as dt

import pytest

from binderhub_registry.sandbox.azure.retention import (
    Contents,
    PurgeError,
    parse_ago,
    parse_purge,
    select,
    split_filter,
)

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


def run(command: str, registry: dict[str, Contents]) -> tuple[dict[str, list[str]], ...]:
    chosen = select(parse_purge(command.split()), NOW, registry)
    return chosen.tags, chosen.manifests


def image(**tags: tuple[str, float]) -> Contents:
    """A repository whose tags point at digests pushed ``days`` ago (a manifest's time: its
    tags' earliest push, unless given in ``manifests``)."""
    contents = Contents()
    for tag, (digest, days) in tags.items():
        contents.tags[tag] = (digest, ago(days))
        contents.manifests[digest] = min(contents.manifests.get(digest, NOW), ago(days))
    return contents


# --- --untagged -------------------------------------------------------------------------------
def test_untagged_deletes_the_manifests_the_run_untagged_and_those_untagged_before() -> None:
    """purge(): purgeTags, then (--untagged) purgeDanglingManifests over every manifest of the
    repository without a tag left, whatever untagged it; another repository is not listed."""
    app = image(old=("sha256:a", 40), recent=("sha256:b", 2))
    app.manifests["sha256:before"] = ago(60)  # its tag was pushed again with other content
    other = image(old=("sha256:o", 40))
    registry = {"app": app, "other": other}
    tags, manifests = run("--filter app:.* --ago 30d --untagged", registry)
    assert tags == {"app": ["old"]}
    assert manifests == {"app": ["sha256:a", "sha256:before"]}
    # without --untagged: the tag only, its manifest stays (stored, untagged)
    tags, manifests = run("--filter app:.* --ago 30d", registry)
    assert tags == {"app": ["old"]} and manifests == {}


def test_untagged_keeps_a_manifest_another_tag_still_holds_and_a_recent_untagged_one() -> None:
    """GetUntaggedManifests: a manifest with a tag left is protected; an untagged one updated
    after the cutoff is protected by age (acr-cli #517, #532; the docs' note: --untagged honors
    --ago from acr-cli 0.17)."""
    app = image(old=("sha256:a", 40), kept=("sha256:a", 1))
    app.manifests["sha256:fresh"] = ago(3)
    tags, manifests = run("--filter app:^old$ --ago 30d --untagged", {"app": app})
    assert tags == {"app": ["old"]} and manifests == {}


def test_untagged_only_deletes_no_tag_and_ignores_the_tag_regex() -> None:
    """--untagged-only: no purgeTags; --filter's tag part unused; --ago optional (all ages)."""
    app = image(old=("sha256:a", 40))
    app.manifests["sha256:before"] = ago(60)
    other = image(x=("sha256:x", 1))
    other.manifests["sha256:y"] = ago(1)
    assert run("--untagged-only", {"app": app, "other": other}) == (
        {},
        {"app": ["sha256:before"], "other": ["sha256:y"]},
    )
    assert run("--filter app:^nothing$ --untagged-only --ago 90d", {"app": app}) == ({}, {})


# --- --keep -----------------------------------------------------------------------------------
def test_keep_keeps_the_n_most_recently_updated_of_the_tags_to_delete() -> None:
    """getTagsToDelete: tags listed newest first (timedesc); the first ``keep`` that match and
    are older than the cutoff are skipped. Recent and non-matching tags do not count."""
    app = image(
        v1=("sha256:1", 50),
        v2=("sha256:2", 45),
        v3=("sha256:3", 40),
        v4=("sha256:4", 35),
        v5=("sha256:5", 1),  # recent: not to be deleted, so not among the kept
        latest=("sha256:6", 60),  # does not match
    )
    tags, _ = run("--filter app:^v --ago 30d --keep 2", {"app": app})
    assert tags == {"app": ["v2", "v1"]}
    tags, _ = run("--filter app:^v --ago 30d --keep 9", {"app": app})
    assert tags == {}


def test_keep_also_keeps_the_n_most_recent_dangling_manifests() -> None:
    """purgeDanglingManifests takes the same --keep: no more dangling manifests than ``keep``,
    none deleted; else the newest ``keep`` stay."""
    app = image(v1=("sha256:1", 50), v2=("sha256:2", 45), v3=("sha256:3", 40))
    tags, manifests = run("--filter app:.* --ago 30d --keep 1 --untagged", {"app": app})
    assert tags == {"app": ["v2", "v1"]}
    # two left untagged, one kept: the older goes
    assert manifests == {"app": ["sha256:1"]}
    tags, manifests = run("--filter app:.* --ago 30d --keep 2 --untagged", {"app": app})
    assert tags == {"app": ["v1"]} and manifests == {}


# --- --dry-run --------------------------------------------------------------------------------
def test_dry_run_selects_what_a_run_would_delete() -> None:
    """--dry-run: "the output would be the same as if they were deleted" (its flag help); a
    manifest counts as untagged when every tag on it would go (GetUntaggedManifests' map)."""
    app = image(old=("sha256:a", 40))
    options = parse_purge("--filter app:.* --ago 30d --untagged --dry-run".split())
    assert options.dry_run
    dry = select(options, NOW, {"app": app})
    real = select(parse_purge("--filter app:.* --ago 30d --untagged".split()), NOW, {"app": app})
    assert dry == real and dry.manifests == {"app": ["sha256:a"]}


# --- --filter ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "split"),
    [
        ("foo:bar", ("foo", "bar")),
        ("hello-(?:abc):zzz", ("hello-(?:abc)", "zzz")),
        ("hello-:z-(?:abc)zz", ("hello-", "z-(?:abc)zz")),
        ("hello-(?:abc)?:z-(?:[:])zz", ("hello-(?:abc)?", "z-(?:[:])zz")),
        ("(?imsU:test):[[:digit:]][tes:]", ("(?imsU:test)", "[[:digit:]][tes:]")),
        ("binderhub/binder-.*:.*", ("binderhub/binder-.*", ".*")),
    ],
)
def test_a_filter_splits_at_its_one_colon_outside_groups_and_classes(
    text: str, split: tuple[str, str]
) -> None:
    """GetRepositoryAndTagRegex, with the cases of acr-cli's TestGetRepositoryAndTagRegex."""
    assert split_filter(text) == split


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("foo", "unable to correctly parse filter flag"),
        ("foo:bar:zzz", "unable to correctly parse filter flag"),
        # not split at the last ':': a repository part with a host:port is refused
        ("myregistry.azurecr.io:443/app:.*", "unable to correctly parse filter flag"),
        (":v1", "missing repository name/expression"),
        ("app:", "missing tag name/expression"),
    ],
)
def test_a_filter_with_no_or_two_colons_or_an_empty_side_is_refused(text: str, error: str) -> None:
    with pytest.raises(PurgeError, match=error):
        split_filter(text)


def test_the_repository_regex_is_anchored_as_caret_regex_dollar() -> None:
    """CollectTagFilters matches ``"^" + repoRegex + "$"``: whole names, except that an
    alternation anchors only its first and last branch, as the concatenation does."""
    names = ["app", "app-cache", "my/app", "foo-x", "x-bar", "x-foo-x"]
    registry = {n: image(t=(f"sha256:{n}", 40)) for n in names}
    tags, _ = run("--filter app:.* --ago 1d", registry)
    assert sorted(tags) == ["app"]
    tags, _ = run("--filter foo|bar:.* --ago 1d", registry)
    assert sorted(tags) == ["foo-x", "x-bar"]


def test_the_tag_regex_is_searched_not_anchored() -> None:
    """getTagsToDelete: ``filter.MatchString(tag)``, regexp2's unanchored match; anchors are the
    user's (the docs' ``hello-world:^1.*``). Two filters on one repository: joined by ``|``."""
    app = image(v1=("sha256:1", 40), v10=("sha256:2", 40), xv1=("sha256:3", 40), z=("sha256:4", 40))
    assert run("--filter app:v1 --ago 1d", {"app": app})[0] == {"app": ["v1", "v10", "xv1"]}
    assert run("--filter app:^v1$ --ago 1d", {"app": app})[0] == {"app": ["v1"]}
    both = run("--filter app:^v1$ -f app:^z --ago 1d", {"app": app})[0]
    assert both == {"app": ["v1", "z"]}


# --- --ago ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "duration"),
    [
        ("30d", dt.timedelta(days=30)),
        ("0d", dt.timedelta()),
        ("1d12h", dt.timedelta(days=1, hours=12)),
        ("2d3h6m", dt.timedelta(days=2, hours=3, minutes=6)),
        ("12h", dt.timedelta(hours=12)),
        ("1.5h", dt.timedelta(hours=1.5)),
        ("90m", dt.timedelta(minutes=90)),
        # %d stops at the '.', "%dd%s" fails, the fallback "%dd" keeps the 1 it read
        ("1.5d", dt.timedelta(days=1)),
        ("999999d", dt.timedelta(days=150 * 365)),  # capped at 150 years, not refused
    ],
)
def test_ago_reads_whole_days_then_a_go_duration(text: str, duration: dt.timedelta) -> None:
    """parseDuration: ``fmt.Sscanf(ago, "%dd%s")``, then ``time.ParseDuration`` on the rest."""
    assert parse_ago(text) == duration


@pytest.mark.parametrize(
    ("text", "error"),
    [("30", "missing unit"), ("3w", 'unknown unit "w"'), ("1d3w", 'unknown unit "w"')],
)
def test_ago_refuses_what_go_refuses(text: str, error: str) -> None:
    with pytest.raises(PurgeError, match=error):
        parse_ago(text)


def test_at_exactly_the_cutoff_a_tag_stays_and_an_untagged_manifest_goes() -> None:
    """Tags: deleted when ``lastUpdateTime.Before(now - ago)`` (strict), so one updated at the
    cutoff stays; manifests: kept only when ``lastUpdateTime.After(cutoff)``, so an untagged one
    updated at the cutoff goes."""
    app = image(edge=("sha256:e", 30), older=("sha256:o", 30.0001))
    app.manifests["sha256:loose"] = ago(30)
    tags, manifests = run("--filter app:.* --ago 30d --untagged", {"app": app})
    assert tags == {"app": ["older"]}
    assert manifests == {"app": ["sha256:loose", "sha256:o"]}
    # hours count the same way
    tags, _ = run("--filter app:.* --ago 720h", {"app": app})
    assert tags == {"app": ["older"]}


# --- the command line -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("--ago 1d", "--filter is required when not using --untagged-only"),
        ("--filter app:.*", "--ago is required when not using --untagged-only"),
        ("--filter app:.* --ago 1d --untagged --untagged-only", "untagged untagged-only"),
        ("--filter app:.* --ago 1d --keep two", 'invalid argument "two" for "--keep"'),
    ],
)
def test_the_command_is_refused_as_acr_purge_refuses_it(command: str, error: str) -> None:
    """RunE's checks before authentication, and cobra's (mutually exclusive flags, an int)."""
    with pytest.raises(PurgeError, match=error):
        parse_purge(command.split())


def test_a_bad_regex_refuses_the_run() -> None:
    with pytest.raises(PurgeError, match="failed to build Regex"):
        run("--filter app:( --ago 1d", {"app": image(v1=("sha256:1", 40))})
