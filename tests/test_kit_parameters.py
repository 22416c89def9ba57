"""``kit.parameters``: a notebook's parameters cell read as Python, and ``-p`` text converted to the declared type."""

from __future__ import annotations

import nbformat
import pytest

from specreg_lib.kit.parameters import (
    Parameter,
    ParameterError,
    convert,
    convert_overrides,
    describe,
    notebook_parameters,
    parse_overrides,
    parse_parameters_cell,
)

CELL = '''profile: str = "smoke"  # smoke | cpu | paper
out_dir: str = "figures/{profile}/02_checkerboard_toy"  # a '#' in a string is not a comment
seeds: list[int] | None = None  # training seeds
variants: list[str] | None = None  # loss variants
lambda_spec: float | None = None  # weight of the spectral term
steps: int | None = None
runs_root: str = "checkpoints"  # run folders
ema: bool = True  # use the EMA weights
lrs: Optional[list[float]] = None
legacy = 3  # no annotation: typed by the default
anything = None
'''


@pytest.fixture(scope="module")
def params() -> dict[str, Parameter]:
    return parse_parameters_cell(CELL)


def test_cell_is_read_as_python(params):
    assert list(params) == ["profile", "out_dir", "seeds", "variants", "lambda_spec", "steps", "runs_root", "ema",
                            "lrs", "legacy", "anything"]
    assert params["seeds"].annotation == "list[int] | None" and params["seeds"].default is None
    assert params["out_dir"].default == "figures/{profile}/02_checkerboard_toy"
    assert params["out_dir"].help == "a '#' in a string is not a comment"
    assert params["steps"].help == "" and params["legacy"].type_text == "int"
    assert describe(params["seeds"]) == "seeds: list[int] | None = None  # training seeds"


def test_notebook_parameters_reads_the_tagged_cell(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell(CELL, metadata={"tags": ["parameters"]})]
    nbformat.write(nb, tmp_path / "n.ipynb")
    assert list(notebook_parameters(tmp_path / "n.ipynb"))[:3] == ["profile", "out_dir", "seeds"]
    nb.cells = nb.cells[:1]
    nbformat.write(nb, tmp_path / "none.ipynb")
    assert notebook_parameters(tmp_path / "none.ipynb") == {}


@pytest.mark.parametrize("name, text, expected", [
    ("profile", "cpu", "cpu"),
    ("runs_root", "/tmp/runs", "/tmp/runs"),
    ("steps", "7", 7),
    ("steps", "-2", -2),
    ("lambda_spec", "0.5", 0.5),
    ("lambda_spec", "1e-4", 1e-4),
    ("lambda_spec", "2", 2.0),
    ("ema", "true", True), ("ema", "True", True), ("ema", "1", True),
    ("ema", "false", False), ("ema", "FALSE", False), ("ema", "0", False),
    ("ema", "yes", True), ("ema", "No", False),
    ("seeds", "3", [3]),
    ("seeds", "1-3", [1, 2, 3]), ("seeds", "1-2,7", [1, 2, 7]),
    ("seeds", "1,2,3", [1, 2, 3]),
    ("seeds", "[1, 2, 3]", [1, 2, 3]),
    ("seeds", " 4 , 5 ", [4, 5]),
    ("variants", "baseline,amp_phase", ["baseline", "amp_phase"]),
    ("variants", "['haar', 'bior1.3']", ["haar", "bior1.3"]),
    ("variants", "amp", ["amp"]),
    ("lrs", "1e-3,5e-4", [1e-3, 5e-4]),
    ("legacy", "5", 5),
    ("anything", "[1, 2]", [1, 2]),
    ("anything", "hello", "hello"),
])
def test_values_take_the_declared_type(params, name, text, expected):
    value = convert(params[name], text)
    assert value == expected and type(value) is type(expected)
    if isinstance(expected, list):
        assert all(type(v) is type(e) for v, e in zip(value, expected))


@pytest.mark.parametrize("name", ["seeds", "variants", "lambda_spec", "steps", "lrs"])
@pytest.mark.parametrize("text", ["none", "None", "null"])
def test_none_for_optional_types(params, name, text):
    assert convert(params[name], text) is None


def test_none_is_text_for_a_plain_str(params):
    assert convert(params["runs_root"], "none") == "none"


@pytest.mark.parametrize("name, text", [
    ("steps", "3.5"), ("steps", "three"), ("lambda_spec", "half"), ("ema", "maybe"), ("ema", "2"),
    ("seeds", "1,x"), ("seeds", "1.5"), ("seeds", "3-1"), ("legacy", "3.0"),
])
def test_bad_values_name_parameter_type_and_value(params, name, text):
    with pytest.raises(ParameterError) as err:
        convert(params[name], text)
    msg = str(err.value)
    assert f"-p {name}={text!r}" in msg and f"`{params[name].type_text}`" in msg


def test_unsupported_annotation_is_named():
    p = parse_parameters_cell("table: dict[str, int] = {}  # not a -p type")["table"]
    with pytest.raises(ParameterError, match=r"`dict\[str, int\]` is not supported"):
        convert(p, "a=1")


def test_non_literal_default_is_refused():
    with pytest.raises(ParameterError, match="not a literal"):
        parse_parameters_cell("import os\nroot: str = os.getcwd()")


def test_overrides_are_text_until_a_notebook_types_them(params):
    texts = parse_overrides(["seeds=3", "lambda_spec=0.5", "other=x", "empty="])
    assert texts == {"seeds": "3", "lambda_spec": "0.5", "other": "x", "empty": ""}
    assert convert_overrides(texts, params) == {"seeds": [3], "lambda_spec": 0.5}
    for bad in ["novalue", "=3", "a b=1"]:
        with pytest.raises(ParameterError, match="key=value"):
            parse_overrides([bad])


# ---------------------------------------------------------------- one grammar for -p and --set

# (declared type, text, value): what a user types, and what both doors must make of it
GRAMMAR = [
    ("bool", "yes", True), ("bool", "No", False), ("bool", "TRUE", True), ("bool", "false", False),
    ("bool", "1", True), ("bool", "0", False),
    ("int", "7", 7), ("int", " -2 ", -2),
    ("float", "1e-4", 1e-4), ("float", "2", 2.0), ("float", "0.5", 0.5),
    ("str", "cpu", "cpu"), ("str", "'cpu'", "cpu"), ("str", '"cuda:1"', "cuda:1"),
    ("int | None", "none", None), ("int | None", "NULL", None), ("int | None", "12", 12),
    ("float | None", "None", None), ("float | None", "0.15", 0.15),
]
BAD_GRAMMAR = [("bool", "maybe"), ("bool", "2"), ("int", "3.5"), ("int", "x"), ("float", "half"),
               ("int | None", "nothing")]
# a field of each declared type in the EDM config, for the --set door
FIELDS = {"bool": "train.progress", "int": "train.seed", "float": "train.lr", "str": "train.device",
          "int | None": "sample.num_steps", "float | None": "augment.p"}


def _set_door(type_text: str, text: str):
    from specreg_lib.experiments import EDMFinetuneConfig
    from specreg_lib.experiments.core.config import parse_set_options

    field = FIELDS[type_text]
    return parse_set_options(EDMFinetuneConfig, [f"{field}={text}"])[field]


@pytest.mark.parametrize("type_text, text, expected", GRAMMAR)
def test_p_and_set_accept_the_same_spellings(type_text, text, expected):
    for value in (convert(Parameter("x", type_text, None), text), _set_door(type_text, text)):
        assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("type_text, text", BAD_GRAMMAR)
def test_p_and_set_refuse_the_same_spellings(type_text, text):
    with pytest.raises(ParameterError, match="cannot convert"):
        convert(Parameter("x", type_text, None), text)
    with pytest.raises(ValueError, match="expected"):
        _set_door(type_text, text)


@pytest.mark.parametrize("text, seeds", [("1,2,3", (1, 2, 3)), ("1-5", (1, 2, 3, 4, 5)), ("0", (0,)),
                                         (" 4 , 5 ", (4, 5)), ("1-3,7", (1, 2, 3, 7)), ("[2, 3]", (2, 3))])
def test_one_seed_grammar(text, seeds):
    from specreg_lib.text import parse_seeds

    assert parse_seeds(text) == list(seeds)
    assert convert(Parameter("seeds", "list[int] | None", None), text) == list(seeds)  # a notebook's seeds


@pytest.mark.parametrize("text", ["", "x", "1,x", "1.5", "3-1", "1,1", "1-3,2", "-1"])
def test_bad_seeds_say_how_to_write_them(text):
    from specreg_lib.text import parse_seeds

    with pytest.raises(ValueError, match=r"--seeds .*write seeds as 1,2,3 or a range 1-5"):
        parse_seeds(text)
