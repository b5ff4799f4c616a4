import numpy as np
from cxrlt_template.sampler import MySampler

from cxrlt.testing import check_entry


def test_images_with_a_finding_come_repeat_times():
    labels = np.array([[1, 0], [0, 0], [0, 1]])  # images 0 and 2 have a finding
    indices = MySampler(labels, repeat=3).indices(np.random.default_rng(0))
    assert sorted(indices.tolist()) == [0, 0, 0, 1, 2, 2, 2]


def test_keeps_the_sampler_contract():
    """Indices in range, the same for the same seed, other ones for another seed."""
    check_entry("samplers", "my-sampler:repeat=3")
