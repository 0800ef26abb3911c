"""The teacher panel's per-(teacher, method, mode) table keeps only runs of a config as shipped, per dataset."""

from __future__ import annotations

import pytest

from fedkd_benchmarks.teacher_panel import DISTILL_VARIANTS, METHOD_CELLS, as_shipped, require_config


def test_the_shipped_cell_follows_each_dataset_config() -> None:
    # tandemgan_mnist.toml ships the stroke body with logit adjustment; tandemgan_digits28.toml the MLP body without
    assert as_shipped("tandemgan-adjusted", "mnist5k") and not as_shipped("tandemgan", "mnist5k")
    assert as_shipped("tandemgan", "digits28") and not as_shipped("tandemgan-adjusted", "digits28")
    # choosing the method, the mode or AEDM's steering keeps a config as shipped; other settings do not:
    # aedm_mnist.toml ships logit adjustment, so the variants measured with the plain loss before are not shipped cells
    shipped = ("fonts-adjusted", "fonts-adjusted-proba", "fonts-adjusted-steered", "real", "dfme-proba")
    assert all(as_shipped(v, "mnist5k") for v in shipped)
    assert not any(as_shipped(v, "mnist5k") for v in ("fonts", "fonts-steered", "fonts-proba", "fonts-steps4",
                                                      "adapted", "tandemgan-strokes"))
    assert not as_shipped("fonts", "digits28")  # no AEDM config for digits28
    assert set(METHOD_CELLS) <= set(DISTILL_VARIANTS)


def test_a_variant_without_a_config_for_the_dataset_is_refused_in_one_line() -> None:
    with pytest.raises(SystemExit, match="^variant 'fonts' has no config for dataset 'digits28'; it runs on mnist5k$"):
        require_config("fonts", "digits28")
    assert require_config("real", "digits28") == ("tandemgan_digits28.toml", {"distill.method": "real"})


def test_the_heldout_teachers_are_none_of_the_shipped_ones() -> None:
    # the held-out check is only a check if no default could have been chosen with its teachers
    from fedkd.teachers import load_teacher
    from fedkd_benchmarks.heldout_teachers import DATASET, HELDOUT
    from fedkd_benchmarks.teacher_panel import teacher_dirs

    infos = [load_teacher(p, dataset=DATASET).info for p in teacher_dirs(DATASET)]
    shipped = {(info.model, info.seed) for info in infos}
    assert len(shipped) == 8 and not shipped & set(HELDOUT)
    assert {m for m, _ in HELDOUT} - {m for m, _ in shipped} == {"resnet18_narrow"}
