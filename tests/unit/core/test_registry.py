"""Registries and plugins: discovery, lazy entries, parameter checks and every error."""

from __future__ import annotations

import pytest

from cxrlt import plugins
from cxrlt.errors import CxrltError
from cxrlt.registry import KINDS, registry, resolve

LOSS_PLUGIN = """
from cxrlt.hookspecs import hookimpl

class Scaled:
    def __init__(self, *, class_counts=None, gamma: float = 2.0, mode: str = "mean"):
        self.class_counts, self.gamma, self.mode = class_counts, gamma, mode

@hookimpl
def register_losses(register):
    register("{name}", Scaled, summary="a test loss", aliases=("{name}-alias",))
"""


def test_every_kind_has_a_hook():
    from cxrlt import hookspecs

    assert {f"register_{kind}" for kind in KINDS} == {
        name for name in dir(hookspecs) if name.startswith("register_")
    }


def test_builtins_are_registered_through_the_hooks():
    entry = registry("losses").get("bce")
    assert entry.plugin == "cxrlt.builtins.losses"
    assert entry.target == "cxrlt.training.losses:BCELoss"  # lazy: a string until loaded
    assert {info.name for info in plugins.plugins()} >= set(plugins.DEFAULT_PLUGINS)


def test_singular_and_plural_kind_words():
    assert registry("loss") is registry("losses")


def test_wildcard_listing_matches_names_and_aliases():
    assert [e.name for e in registry("backbones").match("convnext_*")] == [
        "convnext_atto",
        "convnext_large",
    ]
    assert [e.name for e in registry("samplers").match("rand*")] == ["uniform"]


def test_resolve_fills_defaults_and_keeps_user_values(cxrlt_fake_plugin):
    cxrlt_fake_plugin("demo", LOSS_PLUGIN.format(name="demo"))
    resolved = resolve("loss", "demo:gamma=3")
    assert resolved.params == {"gamma": 3, "mode": "mean"}
    assert resolved.entry.plugin == "demo"
    built = resolved.build(class_counts=[5, 1], n_items=10)  # n_items is not accepted: dropped
    assert (built.gamma, built.class_counts) == (3, [5, 1])
    record = resolved.to_dict()
    assert record["version"] == "1.2.3" and record["spec"] == "demo:gamma=3,mode=mean"


def test_alias_resolves_to_the_entry(cxrlt_fake_plugin):
    cxrlt_fake_plugin("demo", LOSS_PLUGIN.format(name="demo"))
    assert resolve("losses", "demo-alias").entry.name == "demo"


def test_unknown_name_lists_the_closest():
    with pytest.raises(CxrltError, match=r"Unknown loss 'bcee'\. Closest: bce"):
        resolve("losses", "bcee")


def test_unknown_parameter_lists_the_accepted_ones_with_defaults(cxrlt_fake_plugin):
    cxrlt_fake_plugin("demo", LOSS_PLUGIN.format(name="demo"))
    with pytest.raises(CxrltError) as info:
        resolve("losses", "demo:gama=1")
    message = str(info.value)
    assert "no parameter 'gama'" in message and "Did you mean 'gamma'" in message
    assert "gamma: float = 2.0" in message and "mode: str = 'mean'" in message
    assert "class_counts" not in message  # supplied by cxrlt, not by users


def test_ill_typed_parameter_is_refused(cxrlt_fake_plugin):
    cxrlt_fake_plugin("demo", LOSS_PLUGIN.format(name="demo"))
    with pytest.raises(CxrltError, match=r"'gamma' of the loss 'demo' must be float, got 'high'"):
        resolve("losses", "demo:gamma=high")


def test_backbone_parameter_types_are_checked():
    with pytest.raises(CxrltError, match="'pretrained' of the backbone 'resnet18' must be bool"):
        resolve("backbones", "resnet18:pretrained=maybe")


def test_any_timm_name_resolves_as_a_backbone():
    resolved = resolve("backbones", "mobilenetv3_small_050:drop_path_rate=0.1")
    assert resolved.entry.plugin == "cxrlt.builtins.backbones"  # through its name source
    assert resolved.entry.bound["model_name"] == "mobilenetv3_small_050"
    assert resolved.entry.target == "cxrlt.model.backbone:timm_backbone"


def test_unknown_backbone_suggests_timm_names():
    with pytest.raises(CxrltError, match="Closest: .*resnet18.*Any timm model name"):
        resolve("backbones", "resnet188")


def test_the_timm_source_is_the_builtin_backbones_note_and_nothing_is_imported_to_list_it():
    [source] = registry("backbones").sources
    assert source.plugin == "cxrlt.builtins.backbones" and "timm" in source.note
    others = [registry(kind) for kind in KINDS if kind not in ("backbones", "image_text_models")]
    assert all(not reg.sources for reg in others)  # only timm's and OpenCLIP's names have sources


def test_two_plugins_claiming_one_name_are_both_named(cxrlt_fake_plugin):
    cxrlt_fake_plugin("first", LOSS_PLUGIN.format(name="clash"))
    cxrlt_fake_plugin("second", LOSS_PLUGIN.format(name="clash"))
    with pytest.raises(
        CxrltError,
        match=r"Two plugins claim the loss name 'clash': "
        r"'first' and 'second'",
    ):
        registry("losses")


def test_a_plugin_may_take_over_a_builtin_name_only_by_blocking_it(cxrlt_fake_plugin, monkeypatch):
    cxrlt_fake_plugin("mine", LOSS_PLUGIN.format(name="bce"))
    with pytest.raises(CxrltError, match="'cxrlt.builtins.losses' and 'mine'"):
        registry("losses")
    monkeypatch.setenv(plugins.BLOCK_ENV, "cxrlt.builtins.losses")
    plugins.reset()
    assert registry("losses").get("bce").plugin == "mine"


def test_broken_plugin_is_named_and_the_rest_still_works(cxrlt_fake_plugin, capsys):
    cxrlt_fake_plugin("broken", "raise ImportError('needs libfoo')")
    assert "bce" in registry("losses")
    assert "plugin 'broken'" in capsys.readouterr().err
    [failed] = plugins.failed_plugins()
    assert failed.name == "broken" and "needs libfoo" in failed.error
    with pytest.raises(CxrltError, match=r"broken \(ImportError: needs libfoo\)"):
        resolve("losses", "what-broken-had")


def test_misspelled_hook_is_rejected_with_a_suggestion(cxrlt_fake_plugin):
    cxrlt_fake_plugin(
        "typo",
        """
        from cxrlt.hookspecs import hookimpl

        @hookimpl
        def register_loss(register):
            pass
    """,
    )
    [failed] = plugins.failed_plugins()
    assert "did you mean register_losses" in failed.error
    assert "bce" in registry("losses")


def test_load_env_loads_only_named_plugins(cxrlt_fake_plugin, monkeypatch):
    cxrlt_fake_plugin("one", LOSS_PLUGIN.format(name="one"))
    cxrlt_fake_plugin("two", LOSS_PLUGIN.format(name="two"))
    monkeypatch.setenv(plugins.LOAD_ENV, "two")
    plugins.reset()
    names = {e.name for e in registry("losses").entries}
    assert "two" in names and "one" not in names and "bce" in names


def test_block_env_blocks_named_plugins(cxrlt_fake_plugin, monkeypatch):
    cxrlt_fake_plugin("one", LOSS_PLUGIN.format(name="one"))
    monkeypatch.setenv(plugins.BLOCK_ENV, "one")
    plugins.reset()
    assert "one" not in registry("losses")


def test_hook_implementation_may_take_fewer_arguments(cxrlt_fake_plugin):
    cxrlt_fake_plugin(
        "quiet",
        """
        from cxrlt.hookspecs import hookimpl

        @hookimpl
        def register_losses():
            pass
    """,
    )
    assert "bce" in registry("losses")
    assert [p.hooks for p in plugins.plugins() if p.name == "quiet"] == [("register_losses",)]


def test_lazy_target_that_cannot_be_imported_names_the_plugin(cxrlt_fake_plugin):
    cxrlt_fake_plugin(
        "lazy",
        """
        from cxrlt.hookspecs import hookimpl

        @hookimpl
        def register_losses(register):
            register("ghost", "no_such_module:Loss")
    """,
    )
    with pytest.raises(CxrltError, match="plugin 'lazy' points at 'no_such_module:Loss'"):
        resolve("losses", "ghost")


def test_invalid_target_string_is_refused(cxrlt_fake_plugin):
    cxrlt_fake_plugin(
        "bad",
        """
        from cxrlt.hookspecs import hookimpl

        @hookimpl
        def register_losses(register):
            register("oops", "module_without_attr")
    """,
    )
    with pytest.raises(CxrltError, match="'package.module:attribute'"):
        registry("losses")


def test_paper_deviations_and_head_are_kept_on_the_entry(cxrlt_fake_plugin):
    cxrlt_fake_plugin(
        "cited",
        """
        from cxrlt.hookspecs import hookimpl

        @hookimpl
        def register_losses(register):
            register("cited", "math:fsum", paper="Doe et al., 2020",
                     deviations={"gamma": "1, not 2: why"}, head="cosine")
    """,
    )
    entry = registry("losses").get("cited")
    assert (entry.paper, dict(entry.deviations), entry.head) == (
        "Doe et al., 2020",
        {"gamma": "1, not 2: why"},
        "cosine",
    )
    assert entry.to_dict()["deviations"] == {"gamma": "1, not 2: why"}


@pytest.mark.parametrize(
    ("plugin", "hook", "extra", "fragment"),
    [
        ("nopaper", "register_losses", "deviations={'gamma': 'why'}", "but no paper"),
        ("noreason", "register_losses", "paper='Doe', deviations={'gamma': ''}", "where and why"),
        ("samplerhead", "register_samplers", "head='cosine'", "only a loss declares the head"),
    ],
)
def test_bad_paper_metadata_is_refused(cxrlt_fake_plugin, plugin, hook, extra, fragment):
    cxrlt_fake_plugin(
        plugin,
        f"""
        from cxrlt.hookspecs import hookimpl

        @hookimpl
        def {hook}(register):
            register("badmeta", "math:fsum", {extra})
    """,
    )
    with pytest.raises(CxrltError, match=fragment):
        registry(hook.removeprefix("register_"))


SOURCE_PLUGIN = """
from cxrlt.hookspecs import hookimpl

class Scaled:
    def __init__(self, *, class_counts=None, power: float = 1.0):
        self.power = power

def scaled(name):
    # every 'scaled-N' is a loss with power N
    head, _, power = name.partition("-")
    if head != "scaled" or not power.isdigit():
        return None
    return {"target": Scaled, "summary": "a scaled loss", "bound": {"power": float(power)}}

@hookimpl
def register_losses(register):
    register.source(scaled, names=lambda: ["scaled-1", "scaled-2"], note="Any scaled-N too.")
"""


def test_a_plugin_name_source_answers_for_names_no_entry_has(cxrlt_fake_plugin):
    cxrlt_fake_plugin("scaling", SOURCE_PLUGIN)
    assert resolve("losses", "bce").entry.plugin == "cxrlt.builtins.losses"  # entries first
    entry = registry("losses").get("scaled-7")
    assert (entry.name, entry.plugin, entry.summary) == ("scaled-7", "scaling", "a scaled loss")
    assert entry.load()(**entry.bound).power == 7.0
    assert "scaled-7" not in registry("losses")  # claimed on demand, not listed
    assert [s.note for s in registry("losses").sources] == ["Any scaled-N too."]
    with pytest.raises(CxrltError, match=r"Closest: scaled-1.*Any scaled-N too\."):
        resolve("losses", "scaled-x1")


@pytest.mark.parametrize(
    ("plugin", "call", "fragment"),
    [
        ("src1", "register.source(lambda name: None, note='')", "name source wrongly"),
        ("src2", "register.source('no_colon', note='n')", "name source wrongly"),
        ("src3", "register.source(lambda name: {'target': 'x'}, note='n')", "'package.module:"),
        ("src4", "register.source('no_such_module:claim', note='n')", "source of plugin 'src4'"),
        ("src5", "register.source(lambda name: {'summary': 's'}, note='n')", "missing .*target"),
    ],
)
def test_a_wrong_name_source_is_refused_naming_the_plugin(
    cxrlt_fake_plugin, plugin, call, fragment
):
    cxrlt_fake_plugin(  # one module name per case: Python caches an imported module
        plugin,
        f"""
        from cxrlt.hookspecs import hookimpl

        @hookimpl
        def register_losses(register):
            {call}
    """,
    )
    with pytest.raises(CxrltError, match=fragment):
        registry("losses").get("anything")


def test_resolve_takes_a_name_a_spec_or_a_resolved_spec():
    from cxrlt.spec import Spec

    by_name = resolve("losses", "focal:gamma=1.5")
    assert resolve("losses", Spec("focal", {"gamma": 1.5})) == by_name
    assert resolve("loss", by_name) is by_name  # already checked: returned as it is
    backbone = resolve("backbones", "resnet18")
    assert resolve("backbones", backbone, pretrained=None) is backbone
    assert resolve("backbones", backbone, pretrained=True).params["pretrained"] is True
    with pytest.raises(CxrltError, match=r"'focal:.*' is a loss, not a sampler"):
        resolve("samplers", by_name)


def test_data_sets_declare_what_generic_code_used_to_know_by_name():
    datasets = registry("datasets")
    assert datasets.get("synthetic").trains_from_scratch
    assert not any(datasets.get(n).trains_from_scratch for n in ("cxr-lt-2026", "csv"))
    assert [f.name for f in datasets.get("embedded").submissions] == [
        "cxr-lt-2026",
        "cxr-lt-2026-task2",
    ]
    assert datasets.get("csv").submissions == ()
    assert datasets.get("cxr-lt-2024").to_dict()["submissions"] == [
        "cxr-lt-2024",
        "cxr-lt-2024-gold",
    ]


def test_declaring_data_set_knowledge_stays_import_cheap():
    import subprocess
    import sys

    code = (
        "import sys; from cxrlt.registry import registry\n"
        "for kind in ('datasets', 'backbones'): registry(kind).entries\n"
        "print(sorted(m for m in ('cxrlt.data.labels', 'numpy', 'timm', 'torch') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("plugin", "hook", "extra", "fragment"),
    [
        ("scratch", "register_losses", "trains_from_scratch=True", "only a data set declares"),
        ("formats", "register_losses", "submissions=[FMT]", "only a data set declares"),
        ("pairs", "register_datasets", "submissions=[('id', ['a'])]", "SubmissionFormat"),
        ("twice", "register_datasets", "submissions=[FMT, FMT]", "repeated names"),
        ("yes", "register_datasets", "trains_from_scratch='yes'", "give True or False"),
    ],
)
def test_bad_data_set_declarations_are_refused(cxrlt_fake_plugin, plugin, hook, extra, fragment):
    cxrlt_fake_plugin(
        plugin,
        f"""
        from cxrlt.hookspecs import hookimpl
        from cxrlt.registry import SubmissionFormat

        FMT = SubmissionFormat("f", "id", ("a", "b"))

        @hookimpl
        def {hook}(register):
            register("declared", "math:fsum", {extra})
    """,
    )
    with pytest.raises(CxrltError, match=f"'{plugin}' registered .*'declared' with .*{fragment}"):
        registry(hook.removeprefix("register_"))


def test_reset_rebuilds_the_registries_from_a_new_plugin_manager(cxrlt_fake_plugin):
    before = registry("losses")
    cxrlt_fake_plugin("late", LOSS_PLUGIN.format(name="late"))  # resets the plugins
    assert registry("losses") is not before and "late" in registry("losses")
