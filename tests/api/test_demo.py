"""The demo's search-progress picture: every scored trial at the samples spent when it was told, and
the best so far as a step line (the end-to-end demo runs in test_cli.py)."""

from __future__ import annotations

from guidetune.api.demo import _progress, _save_curve


def test_progress_counts_samples_in_tell_order_and_skips_unscored_trials(tmp_path):
    told = [{"n_samples": 16, "score": 0.5}, {"n_samples": 16, "score": None},   # a failed trial still spent
            {"n_samples": 64, "score": -0.2}, {"n_samples": 64, "score": 0.9}]
    points, curve = _progress(told)
    assert points == [(16, 0.5), (96, -0.2), (160, 0.9)]
    assert curve == [(16, 0.5), (32, 0.5), (96, 0.5), (160, 0.9)]
    assert _progress([{"n_samples": 8, "score": None}]) == ([], [])
    _save_curve(_progress(told), tmp_path / "p.png")
    _save_curve(([], []), tmp_path / "empty.png")      # a study without a scored trial still gets a picture
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "p.png").stat().st_size > (tmp_path / "empty.png").stat().st_size
