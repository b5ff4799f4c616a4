"""Names with parameters: parsing, formatting, round trips, and lists typed in a shell."""

import json
import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from cxrlt.cli import app
from cxrlt.data.synthetic import write_synthetic_cxr
from cxrlt.errors import CxrltError
from cxrlt.pytest_plugin import TINY_DATA
from cxrlt.spec import Spec, format_value, parse_spec, parse_specs, parse_value


def test_plain_name():
    assert parse_spec("bce") == Spec("bce", {})


def test_parameters_are_python_literals_else_strings():
    spec = parse_spec("ldam-drw:max_m=0.5,s=30,norm=True,mode=fast,scales=[0.9,1.1],w=None")
    assert spec.name == "ldam-drw"
    assert spec.params == {
        "max_m": 0.5,
        "s": 30,
        "norm": True,
        "mode": "fast",
        "scales": [0.9, 1.1],
        "w": None,
    }
    assert type(spec.params["s"]) is int


def test_colon_without_key_belongs_to_the_name():
    assert parse_spec("hf-hub:timm/convnext_tiny.fb_in1k") == Spec(
        "hf-hub:timm/convnext_tiny.fb_in1k"
    )
    assert parse_spec("hf-hub:timm/x:pretrained=False") == Spec(
        "hf-hub:timm/x", {"pretrained": False}
    )


def test_list_of_steps_keeps_order_and_bracketed_commas():
    specs = parse_specs("crt,tta:scales=[0.9,1.1],merge=logit,temp-scale")
    assert specs == [
        Spec("crt"),
        Spec("tta", {"scales": [0.9, 1.1], "merge": "logit"}),
        Spec("temp-scale"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "bce",
        "ldam-drw:max_m=0.5,s=30",
        "tta:scales=[0.9,1.1],merge=logit",
        "x:name='a,b',flag=False,n=None,t=(1,2)",
        "x:label='None',path=/data/w.safetensors",
        "hf-hub:timm/x:pretrained=True",
        "csv:labels=[Mass,Nodule],ignore_columns=[A,'B,C']",
        "x:pair=(a,),nested=[[a,1],[None]]",
    ],
)
def test_round_trip_to_the_same_string(text):
    assert str(parse_spec(text)) == text
    assert parse_spec(str(parse_spec(text))) == parse_spec(text)


def test_strings_that_would_read_as_other_values_are_quoted():
    assert format_value("None") == "'None'"
    assert format_value("1.5") == "'1.5'"
    assert format_value("a,b") == "'a,b'"
    assert format_value("fast") == "fast"


@pytest.mark.parametrize("value", ["[A,B]", "[A, B]", '["A","B"]', "['A', 'B']", " [ A ,B ] "])
def test_bracketed_bare_words_are_the_same_list_as_quoted_ones(value):
    spec = parse_spec(f"cxr-lt-2026:ignore_columns={value}")
    assert spec.params == {"ignore_columns": ["A", "B"]}


def test_numbers_in_brackets_stay_numbers_and_words_stay_words():
    assert parse_spec("tau-norm:taus=[0.5,1]").params["taus"] == [0.5, 1]
    assert type(parse_spec("tau-norm:taus=[0.5,1]").params["taus"][1]) is int
    assert parse_value("[Mass, 1, None, 'None', [a, 2.5]]") == ["Mass", 1, None, "None", ["a", 2.5]]
    assert parse_value("(a, b)") == ("a", "b") and parse_value("(a,)") == ("a",)
    assert parse_value("(a)") == "a"  # as in Python: parentheses alone make no tuple
    assert parse_value("[a b, c]") == ["a b", "c"]
    assert parse_value("{a,b}") == "{a,b}"  # no bare-word sets or dicts


def test_commas_inside_brackets_never_split_the_list_of_specs():
    assert parse_specs("tau-norm:taus=[0.5,1],temp-scale") == [
        Spec("tau-norm", {"taus": [0.5, 1]}),
        Spec("temp-scale"),
    ]
    assert parse_spec("csv:ignore_columns=[A,B],labels=[Mass, Nodule]").params == {
        "ignore_columns": ["A", "B"],
        "labels": ["Mass", "Nodule"],
    }


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("bce,,focal", "stray comma"),
        ("s=30", "starts with a parameter"),
        ("ldam:s=1,s=2", "given twice: keep one"),
        ("tta:scales=[0.9,1.1", "Unbalanced"),
        ("focal:=2", "'=2' has no parameter name before '=': write key=value"),
        ("focal:gamma=2,=3", "'=3' has no parameter name"),
        ("focal:1x=2", "'1x', which is no parameter name"),
        ("csv:labels=[A,,B]", "Empty item in '[A,,B]': remove the stray comma"),
    ],
)
def test_malformed_specs_say_what_is_wrong(text, fragment):
    with pytest.raises(CxrltError, match=re.escape(fragment)):
        parse_specs(text)


def test_parse_spec_wants_exactly_one():
    with pytest.raises(CxrltError, match="Expected one name.*Give one name with its parameters"):
        parse_spec("bce,focal")


@pytest.mark.slow
def test_a_bracket_list_from_a_shell_reaches_the_data_set_as_a_list(tmp_path):
    folder = write_synthetic_cxr(tmp_path / "data", n_images=80, size=32, seed=2)
    table = pd.read_csv(folder / "train.csv", dtype=str, keep_default_na=False)
    table.insert(3, "A", "x")  # columns that are no label: refused unless ignored
    table.insert(4, "B", "7")
    table.to_csv(folder / "train.csv", index=False)
    args = ["run", "--data", str(folder), "--size", "32", "--epochs", "1", "--bs", "16"]
    args += ["--no-pretrained", "--out", str(tmp_path / "run")]
    unlisted = CliRunner().invoke(app, [*args, "--dataset", "cxr-lt-2026"])
    assert unlisted.exit_code == 2 and "ignore_columns" in unlisted.output
    listed = CliRunner().invoke(app, [*args, "--dataset", "cxr-lt-2026:ignore_columns=[A,B]"])
    assert listed.exit_code == 0, listed.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["specs"]["dataset"]["params"]["ignore_columns"] == ["A", "B"]


def test_sweep_keeps_a_bracketed_comma_inside_its_step(tmp_path):
    post = "none,tau-norm:taus=[0.5, 1]+temp-scale"
    args = ["sweep", "--dataset", TINY_DATA, "--arch", "resnet18:pretrained=False"]
    result = CliRunner().invoke(
        app, [*args, "--post", post, "--print-commands", "--out", str(tmp_path / "s")]
    )
    assert result.exit_code == 0, result.output
    assert "--post 'tau-norm:taus=[0.5,1],temp-scale'" in result.output
