"""Fuzz `--set KEY=VALUE` for every method on every command that takes it (class, classify, concept).

Keys come from the method's declarations (and a few it does not have); values are allowed ones, numbers out of
range, the wrong type, or junk text. The test decides on its own which values are allowed (what the declared
type and bounds say) and asserts:

- a draw with a bad value ends with exit 2 and one line that names a bad key, and writes nothing;
- a draw whose values are all allowed gets past every setting check. Its --out folder already exists, so it is
  then refused for that (the last check before a run folder is made, after every setting and argument check):
  the fuzz costs no training. tests/test_settings.py runs accepted values end to end.
"""
import math

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from erase.methods import method_class, method_names
from erase.settings import Bool, Choice, Float, Int, Setting, Text
from tests.conftest import TINY_DDPM, files_under

COMMANDS = {
    "class": ["class", "--model", "tiny-ddpm.yaml", "--forget", "3", "--init", "random"],
    "classify": ["classify", "--model", "digits-cnn", "--forget-class", "3", "--init", "random"],
    "concept": ["concept", "--model", "t2i-shapes", "--prompt", "triangle", "--init", "random"],
}
# methods a concept run refuses whatever their settings (they need the model's training data)
NOT_FOR_CONCEPTS = {"amnesiac", "partial-amnesiac", "retrain"}
WRONG_TYPE = ["abc", "true", "[1]", "1,5", "0x10", "", " ", "nan", "inf", "-inf", "1e400", "none", "{}", "3 4"]
UNKNOWN_KEYS = ["alpah", "zzz", "mask-ratio", "ALPHA"]


def allowed(setting: Setting, text: str) -> bool:
    """The test's own reading of a declaration: what its type and bounds say about `text`."""
    word = text.strip().lower()
    if word in ("none", "null", "~"):
        return setting.optional
    if isinstance(setting, Float):
        try:
            number = float(text.strip())
        except ValueError:
            return False
        whole = not isinstance(setting, Int) or number.is_integer()
        return (math.isfinite(number) and whole and (setting.ge is None or number >= setting.ge)
                and (setting.gt is None or number > setting.gt) and (setting.le is None or number <= setting.le)
                and (setting.lt is None or number < setting.lt))
    if isinstance(setting, Bool):
        return word in ("true", "false", "yes", "no", "on", "off", "1", "0")
    if isinstance(setting, Choice):
        return text.strip() in setting.choices
    if isinstance(setting, Text):
        return bool(text.strip())
    raise AssertionError(f"no oracle for {type(setting).__name__}")


def numbers(setting: Float) -> st.SearchStrategy[str]:
    """Numbers around the bounds, inside and outside, written in several ways."""
    edges = [b for b in (setting.ge, setting.gt, setting.le, setting.lt) if b is not None] or [0.0]
    near = st.sampled_from(edges).flatmap(lambda b: st.floats(b - 2, b + 2, allow_nan=False))
    value = st.one_of(near, st.floats(-1e6, 1e6), st.integers(-5, 5))
    written = st.tuples(value, st.sampled_from(["{}", "{:e}", "{:.3g}", " {} "]))
    return written.map(lambda pair: pair[1].format(pair[0]))


def inside(setting: Float) -> st.SearchStrategy[str]:
    """Numbers the bounds allow (most of them valid; the oracle still decides)."""
    low = setting.ge if setting.ge is not None else setting.gt if setting.gt is not None else -1e3
    high = setting.le if setting.le is not None else setting.lt if setting.lt is not None else low + 1e3
    if isinstance(setting, Int):
        return st.integers(math.ceil(low), math.floor(high)).map(str)
    return st.floats(low, high, exclude_min=setting.gt is not None, exclude_max=setting.lt is not None).map(repr)


def values(setting: Setting) -> st.SearchStrategy[str]:
    """Allowed values most of the time, else out of range, the wrong type or junk."""
    junk = st.text(max_size=8)
    typed = st.sampled_from(WRONG_TYPE)
    if isinstance(setting, Float):
        good = inside(setting)
        return st.one_of(good, good, good, numbers(setting), typed, junk)
    if isinstance(setting, Bool):
        good = st.sampled_from(["true", "False", "yes", "off", "1", "0"])
        return st.one_of(good, good, good, st.sampled_from(["2", "maybe"]), typed, junk)
    if isinstance(setting, Choice):
        good = st.sampled_from(setting.choices)
        return st.one_of(good, good, good, st.sampled_from([c.upper() for c in setting.choices]), typed, junk)
    good = st.sampled_from(["logs/run-1", "x"])
    return st.one_of(good, good, good, typed, junk)


@st.composite
def set_options(draw, command: str):
    method = draw(st.sampled_from(method_names()))
    declared = method_class(method).declared_settings()
    keys = draw(st.lists(st.sampled_from(sorted(declared)), min_size=1, max_size=3, unique=True))
    pairs = [(key, draw(values(declared[key]))) for key in keys]
    if draw(st.integers(0, 9)) == 0:
        pairs.append((draw(st.sampled_from(UNKNOWN_KEYS)), "1"))
    bad = [key for key, value in pairs if key not in declared or not allowed(declared[key], value)]
    return method, pairs, bad


def fuzz(cli, command: str, options, folder) -> None:
    method, pairs, bad = options
    before = files_under(folder)
    argv = [*COMMANDS[command], "--method", method, "--out", "taken"]
    for key, value in pairs:
        argv += ["--set", f"{key}={value}"]
    event("a bad value" if bad else "all allowed")
    code, _, err = cli(*argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, (argv, err)
    assert files_under(folder) == before, argv  # nothing written, the existing --out folder untouched
    if bad:
        assert any(f"{key}=" in lines[0] or f"'{key}'" in lines[0] for key in bad), (argv, lines[0])
        assert any(w in lines[0] for w in (" must be ", "unknown setting")), lines[0]
    elif command == "concept" and method in NOT_FOR_CONCEPTS:
        assert "a concept's forget data" in lines[0], (argv, lines[0])
    else:
        assert "output folder taken already exists" in lines[0], (argv, lines[0])


@pytest.fixture
def fuzz_folder(workdir):
    (workdir / "tiny-ddpm.yaml").write_text(yaml.safe_dump(TINY_DDPM))
    (workdir / "taken").mkdir()
    (workdir / "taken" / "mine.txt").write_text("keep")
    return workdir


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(options=set_options("class"))
def test_fuzz_set_on_class(cli, fuzz_folder, options):
    fuzz(cli, "class", options, fuzz_folder)


@FUZZ
@given(options=set_options("classify"))
def test_fuzz_set_on_classify(cli, fuzz_folder, options):
    fuzz(cli, "classify", options, fuzz_folder)


@FUZZ
@given(options=set_options("concept"))
def test_fuzz_set_on_concept(cli, fuzz_folder, options):
    fuzz(cli, "concept", options, fuzz_folder)
