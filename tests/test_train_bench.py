"""`expspan bench finetune` compares the paper's configurations where its claim lives: data at 8x the context the
attention settings are fitted to."""

import pytest

from expspan_cli.attention.params import make_params, reduces_to_full
from expspan_cli.train.bench import scaled_attention


def test_configurations_are_fitted_to_a_base_at_an_eighth_of_the_length():
    """At 16K: a 2K base's settings (SE chunks 2K/4K, SW window 4K), as `expspan finetune` fits them."""
    assert scaled_attention("se", 16384) == {"chunk_sizes": [2048, 4096]}
    assert scaled_attention("swa", 16384) == {"window": 4096}
    assert scaled_attention("s2", 16384) == {} and scaled_attention("full", 16384) == {}


@pytest.mark.parametrize("length", [2048, 8192, 16384])
@pytest.mark.parametrize("variant", ["se", "swa", "s2"])
def test_no_configuration_is_full_attention_under_another_name(variant, length):
    params = make_params(variant, **scaled_attention(variant, length))
    assert reduces_to_full(variant, params, length) is None
