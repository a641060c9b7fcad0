"""The names pipesync writes onto objects: label values, Run names, the spec digest."""

from __future__ import annotations

import datetime
import re

import pytest

from pipesync.api import conventions
from pipesync.api.conventions import label_value, recurring_run_name, triggered_run_name

#: Kubernetes' own rule for a label value (apimachinery validation.IsValidLabelValue).
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def ts(text: str) -> int:
    return int(datetime.datetime.fromisoformat(text).timestamp())


# --- label values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "short",
        "a" * 63,
        "a" * 64,
        "b" * 200,
        "x" * 53 + "-" + "y" * 20,  # the cut lands on a dash: it is stripped
        "x" * 53 + "." + "y" * 20,
        "my.dotted.name-" + "z" * 60,
        "Has Spaces/and:colons",
        "_leading-and-trailing_",
        "-" * 70,
        "ü" * 10,
    ],
)
def test_every_name_becomes_a_valid_label_value(name: str) -> None:
    value = label_value(name)
    assert len(value) <= 63
    assert LABEL_VALUE.match(value), value
    assert label_value(name) == value  # selectors find it again


def test_a_valid_label_value_stays_as_it_is() -> None:
    assert label_value("short") == "short"
    assert label_value("a" * 63) == "a" * 63
    assert label_value("Mixed_Case.v1") == "Mixed_Case.v1"
    assert label_value("") == ""


def test_long_names_keep_their_beginning_and_differ_by_a_hash() -> None:
    long_a, long_b = "a" * 70 + "-x", "a" * 70 + "-y"
    assert label_value(long_a) != label_value(long_b)
    assert label_value(long_a).startswith("a" * 54 + "-")
    assert len(label_value("b" * 200)) <= 63


def test_a_long_recurring_run_keeps_the_label_value_it_had() -> None:
    """Runs of a RecurringRun are found again by this label: the rule of the RecurringRun
    controller's own copy (54 characters, '-', eight hex digits of sha256) is kept."""
    name = "r" * 100
    assert label_value(name) == "r" * 54 + "-" + conventions.short_hash(name)


# --- run names --------------------------------------------------------------------------


def test_recurring_run_names_are_deterministic_and_short() -> None:
    t = ts("2026-05-01T02:00:00+00:00")
    assert recurring_run_name("nightly", t) == "nightly-20260501020000"
    long_a, long_b = "a" * 60 + "-x", "a" * 60 + "-y"
    assert len(recurring_run_name(long_a, t)) <= 63
    assert recurring_run_name(long_a, t) != recurring_run_name(long_b, t)
    assert recurring_run_name(long_a, t) == recurring_run_name(long_a, t)
    assert recurring_run_name(long_a, t).endswith("-20260501020000")
    assert len(label_value("b" * 200)) <= 63 and label_value("short") == "short"


def test_triggered_run_names_fit_a_label_value() -> None:
    long = "p" * 80
    name = triggered_run_name(long, "a" * 40)
    assert len(name) <= 63 and name.endswith("-" + "a" * 10)
    assert triggered_run_name("q" * 80, "a" * 40) != name
    assert triggered_run_name("digits", "0123456789abcdef") == "digits-0123456789"
    assert len(label_value("s" * 100)) <= 63


def test_rerun_names_fit_and_carry_the_time() -> None:
    now = float(ts("2026-05-01T02:00:00+00:00"))
    assert conventions.rerun_name("train", now) == "train-rerun-20260501020000"
    long = conventions.rerun_name("t" * 100 + "-", now)
    assert len(long) <= 63 and long.endswith("-rerun-20260501020000")


def test_local_run_names_are_dns_labels() -> None:
    name = conventions.local_run_name("p" * 80, 0.0, "ab12")
    assert len(name) <= 63 and name.startswith("p" * 40 + "-") and name.endswith("-ab12")
    assert conventions.local_run_name(None, 0.0, "ab12").startswith("run-")


def test_the_pinned_config_map_is_named_after_its_run() -> None:
    assert conventions.pinned_config_name("train") == "train-pipeline"
    assert len(conventions.pinned_config_name("r" * 253)) == 253


# --- the spec digest --------------------------------------------------------------------


def test_equal_specs_have_equal_digests_whatever_their_key_order() -> None:
    spec = {"tasks": [{"name": "ä", "command": ["x"]}], "params": []}
    reordered = {"params": [], "tasks": [{"command": ["x"], "name": "ä"}]}
    digest = conventions.spec_digest(spec)
    assert digest == conventions.spec_digest(reordered)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    assert digest != conventions.spec_digest({**spec, "params": [{"name": "p"}]})
