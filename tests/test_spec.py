"""Names with parameters: parsing, formatting and round trips."""

import pytest

from cxrlt.errors import CxrltError
from cxrlt.spec import Spec, format_value, parse_spec, parse_specs


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


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("bce,,focal", "stray comma"),
        ("s=30", "starts with a parameter"),
        ("ldam:s=1,s=2", "given twice"),
        ("tta:scales=[0.9,1.1", "Unbalanced"),
    ],
)
def test_malformed_specs_say_what_is_wrong(text, fragment):
    with pytest.raises(CxrltError, match=fragment):
        parse_specs(text)


def test_parse_spec_wants_exactly_one():
    with pytest.raises(CxrltError, match="Expected one name"):
        parse_spec("bce,focal")
