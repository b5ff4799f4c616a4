"""Prompt sets: the built-in file covers both CXR-LT 2026 tasks, templates x terms expand, and
every mistake in a user's file names the file and the fix."""

from __future__ import annotations

import pytest

from cxrlt.data.labels import CXR_LT_2026_CLASSES, CXR_LT_2026_TASK2_CLASSES
from cxrlt.errors import CxrltError
from cxrlt.zero_shot.prompts import load_prompt_set

USER_SET = """
templates = ["an X-ray with {}.", "{} seen."]
negative_templates = ["no {}."]

[classes]
"Pleural effusion" = ["effusion", "fluid"]

[prompts]
Normal = ["a normal chest."]

[negative_prompts]
Normal = ["an abnormal chest."]
"""


def _write(tmp_path, text):
    path = tmp_path / "prompts.toml"
    path.write_text(text)
    return path


def test_the_builtin_set_covers_every_class_of_both_2026_tasks():
    prompts = load_prompt_set().for_classes([*CXR_LT_2026_CLASSES, *CXR_LT_2026_TASK2_CLASSES])
    assert len(prompts) == 36
    for class_prompts in prompts:
        assert len(class_prompts.positive) >= 4 and class_prompts.negative
        assert len(set(class_prompts.positive)) == len(class_prompts.positive)


def test_templates_expand_with_each_term_and_full_prompts_are_kept(tmp_path):
    prompt_set = load_prompt_set(_write(tmp_path, USER_SET))
    effusion, normal = prompt_set.for_classes(["pleural-effusion", "NORMAL"])
    assert effusion.positive == ("an X-ray with effusion.", "effusion seen.",
                                 "an X-ray with fluid.", "fluid seen.")  # fmt: skip
    assert effusion.negative == ("no effusion.", "no fluid.")
    assert (normal.positive, normal.negative) == (("a normal chest.",), ("an abnormal chest.",))


def test_missing_classes_are_all_named_with_the_file(tmp_path):
    path = _write(tmp_path, USER_SET)
    with pytest.raises(CxrltError, match=r"no prompts for 'Bulla', 'goiter'.*--prompts FILE") as e:
        load_prompt_set(path).for_classes(["Normal", "Bulla", "goiter"])
    assert str(path) in str(e.value)


def test_a_misspelt_class_gets_the_closest_name():
    with pytest.raises(CxrltError, match="Closest to 'Pneumothorx': 'Pneumothorax'"):
        load_prompt_set(None).for_classes(["Pneumothorx"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("templates = [", "is not valid TOML"),
        ('templates = ["{}"]\nlabels = {}', r"unknown key\(s\) labels"),
        ('templates = ["a chest X-ray."]', "has no '{}' for the term"),
        ("[classes]\nBulla = ['bulla']", "give templates"),
        ('templates = ["{}"]\n[classes]\nBulla = []', "must be a non-empty list of texts"),
        ('templates = ["{}"]\n[negative_prompts]\nBulla = ["no"]', "no positive prompts"),
    ],
)
def test_a_bad_file_is_refused_naming_it(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(CxrltError, match=message) as error:
        load_prompt_set(path)
    assert str(path) in str(error.value)


def test_a_missing_file_names_the_builtin_one_to_start_from(tmp_path):
    with pytest.raises(CxrltError, match="no such file.*cxr_lt_2026.toml"):
        load_prompt_set(tmp_path / "absent.toml")
