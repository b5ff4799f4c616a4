from cxrlt.options import read_recipe
from cxrlt.testing import check_entry


def test_every_option_has_a_source():
    recipe = read_recipe("my-recipe")
    assert set(recipe.sources) == set(recipe.options)


def test_keeps_the_recipe_contract():
    """Its file reads, and every name in it resolves and builds."""
    check_entry("recipes", "my-recipe")
