from cxrlt_template.command import count_labels

from cxrlt.testing import check_entry


def test_counts_each_class_rarest_first(labelled_folder, capsys):
    count_labels(dataset="my-dataset", data=str(labelled_folder))
    assert capsys.readouterr().out == "3 images\nCardiomegaly: 1\nEffusion: 2\n"


def test_keeps_the_command_contract():
    """Typer makes a command of it, and its --help works."""
    check_entry("commands", "my-command")
