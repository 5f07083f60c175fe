"""The HTTP API against a real ``guidetune serve`` (uvicorn, a real store, studies run by its
scheduler): auth, cross-owner 404, idempotency, every bad upload, studies of an uploaded predictor,
paging, export, the CLI client's watch output, and a restart that resumes a study."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import httpx
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from server_process import Server  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def nets(tmp_path_factory) -> dict[str, Path]:
    """TorchScript files: the bundled guide and judge traced, and broken ones."""
    from guidetune.evaluators.bundled import load_bundled_models

    folder = tmp_path_factory.mktemp("nets")
    models = load_bundled_models()
    x = torch.randn(2, 1, 8, 8)
    torch.jit.trace(models.guide, x).save(str(folder / "guide.pt"))
    torch.jit.trace(models.judge, x).save(str(folder / "judge.pt"))
    good = (folder / "guide.pt").read_bytes()
    (folder / "corrupt.pt").write_bytes(good[: len(good) // 3])
    (folder / "empty.pt").write_bytes(b"")
    (folder / "not-torch.pt").write_bytes(b"hello, I am a text file\n" * 50)

    class NonFinite(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :10] / 0.0

    class Rounded(torch.nn.Module):
        def forward(self, x):
            return torch.round(x.flatten(1)[:, :10])

    class WrongShape(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :3] * 2.0

    for name, module in (("nonfinite", NonFinite()), ("rounded", Rounded()), ("wrongshape", WrongShape())):
        torch.jit.trace(module, x).save(str(folder / f"{name}.pt"))
    return {p.stem: p for p in folder.iterdir()}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("home"), "--executor", "local", env={"GUIDETUNE_MAX_UPLOAD_MB": "8"})
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def alice(server):
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token('alice')}"}, timeout=120)


@pytest.fixture(scope="module")
def bob(server):
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token('bob')}"}, timeout=120)


CLASSIFIER = {"kind": "classifier", "model": "digits", "num_classes": 10}


def upload(client, path, meta=CLASSIFIER, route="/v1/predictors"):
    with open(path, "rb") as f:
        return client.post(route, files={"file": (Path(path).name, f)}, data={"metadata": json.dumps(meta)})


def assert_clean_error(r, status, *words):
    """A 4xx JSON error that names the problem and carries no stack trace."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "status"} and body["status"] == status
    assert "Traceback" not in r.text and 'File "' not in r.text
    for w in words:
        assert w in body["error"], body["error"]


def test_health_needs_no_token_and_reports_store_and_schema(server):
    from guidetune.storage.schema import SCHEMA_REVISION

    r = httpx.get(server.url + "/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["store_reachable"] and body["schema_revision"] == SCHEMA_REVISION
    assert "guidetune.db" in body["store"]
    assert httpx.get(server.url + "/openapi.json").json()["info"]["title"] == "guidetune"


def test_auth_required_and_unknown_tokens_refused(server):
    assert_clean_error(httpx.get(server.url + "/v1/studies"), 401, "missing bearer token", "token create")
    r = httpx.get(server.url + "/v1/studies", headers={"Authorization": "Bearer nope"})
    assert_clean_error(r, 401, "unknown token")
    assert r.headers["www-authenticate"] == "Bearer"


def test_uploads_validated_and_deduplicated(alice, bob, nets):
    first = upload(alice, nets["guide"])
    assert first.status_code == 201, first.text
    body = first.json()
    import hashlib

    assert body["sha256"] == hashlib.sha256(nets["guide"].read_bytes()).hexdigest()
    assert body["metadata"]["found"]["output"] == "(B, 10)"
    again = upload(alice, nets["guide"])
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    # every bad file: a 400 naming the failed check
    assert_clean_error(upload(alice, nets["corrupt"]), 400, "not a TorchScript file", "truncated")
    assert_clean_error(upload(alice, nets["not-torch"]), 400, "not a TorchScript file")
    assert_clean_error(upload(alice, nets["empty"]), 400, "empty")
    assert_clean_error(upload(alice, nets["nonfinite"]), 400, "non-finite")
    assert_clean_error(upload(alice, nets["rounded"]), 400, "not differentiable")
    assert_clean_error(upload(alice, nets["wrongshape"]), 400, "3 logits", "num_classes")
    assert_clean_error(upload(alice, nets["guide"], CLASSIFIER | {"num_classes": 7}), 400, "10 logits", "(B, 7)")
    # bad metadata: refused before the file is even looked at
    assert_clean_error(upload(alice, nets["guide"], {"kind": "oracle", "model": "digits"}), 400, "'kind'")
    assert_clean_error(upload(alice, nets["guide"], CLASSIFIER | {"input_shape": [1, 28, 28]}), 400, "input_shape")
    assert_clean_error(upload(alice, nets["guide"], CLASSIFIER | {"model": "sd-xl"}), 400, "neither a bundled model")
    r = alice.post("/v1/predictors", files={"file": ("g.pt", b"x")}, data={"metadata": "{not json"})
    assert_clean_error(r, 400, "not valid JSON")
    assert_clean_error(alice.post("/v1/predictors", data={"metadata": "{}"}), 400, "file")
    # oversized (this server's limit is 8 MB): 413 before validation
    big = nets["guide"].parent / "big.pt"
    big.write_bytes(b"\0" * (9 << 20))
    assert_clean_error(upload(alice, big), 413, "8 MB upload limit")
    # nothing else disturbed: the good upload is listed once, only to its owner
    assert [u["id"] for u in alice.get("/v1/predictors").json()] == [body["id"]]
    assert bob.get("/v1/predictors").json() == []
    assert httpx.get(alice.base_url.join("/healthz")).json()["status"] == "ok"


def test_bad_study_requests_are_clear_4xx(alice):
    assert_clean_error(alice.post("/v1/studies", json={"target": "3"}), 400, "give 'task'")
    assert_clean_error(alice.post("/v1/studies", json={"task": "digits-labl", "target": "3", "budget_samples": 100}),
                       400, "unknown task", "digits-label")
    assert_clean_error(alice.post("/v1/studies", json={"task": "digits-label", "target": "12", "budget_samples": 100}),
                       400, "target")
    assert_clean_error(alice.post("/v1/studies", json={"task": "digits-label", "target": "3", "searcher": "magic",
                                                       "budget_samples": 100}), 400, "unknown searcher")
    assert_clean_error(alice.post("/v1/studies", json={"task": "digits-label", "target": "3"}), 400, "budget")
    assert_clean_error(alice.post("/v1/studies", json={"task": "digits-label", "target": "3", "budget_samples": -5}),
                       400, "budget_samples")
    assert_clean_error(alice.post("/v1/studies", json={"task": "digits-label", "target": "3", "budget_samples": 100,
                                                       "colour": "red"}), 400, "colour")
    assert_clean_error(alice.post("/v1/studies", content=b"{", headers={"Content-Type": "application/json"}), 400)
    assert_clean_error(alice.post("/v1/studies", json={"model": "digits", "predictor_id": "pred-0000", "target": "3",
                                                       "budget_samples": 100}), 404, "predictor_id")
    assert_clean_error(alice.get("/v1/studies/999999"), 404, "no study 999999")
    assert_clean_error(alice.get("/v1/studies/abc"), 400, "study_id")
    assert_clean_error(alice.get("/v1/nowhere"), 404, "no route")


def test_study_of_an_uploaded_predictor_runs_with_notices_paging_and_export(server, alice, bob, nets):
    pred = upload(alice, nets["guide"]).json()["id"]
    spec = {"model": "digits", "predictor_id": pred, "target": "3", "searcher": "beam", "n_samples": 8,
            "budget_samples": 64, "seed": 1}
    r = alice.post("/v1/studies", json=spec, headers={"Idempotency-Key": "k-1"})
    assert r.status_code == 201, r.text
    study = r.json()
    sid = study["id"]
    assert study["judge"] == "guide" and any("validity was scored by the guide itself" in n for n in study["notices"])
    # a retried request: the same study; the same key with another body: 409
    again = alice.post("/v1/studies", json=spec, headers={"Idempotency-Key": "k-1"})
    assert again.status_code == 200 and again.json()["id"] == sid
    assert_clean_error(alice.post("/v1/studies", json=spec | {"seed": 2}, headers={"Idempotency-Key": "k-1"}),
                       409, "Idempotency-Key")
    # another owner sees nothing of it: 404, never 403
    for path in (f"/v1/studies/{sid}", f"/v1/studies/{sid}/trials", f"/v1/studies/{sid}/best",
                 f"/v1/studies/{sid}/export", f"/v1/studies/{sid}/trials/0/samples.png"):
        assert_clean_error(bob.get(path), 404)
    assert_clean_error(bob.post(f"/v1/studies/{sid}/cancel"), 404)
    assert bob.get("/v1/studies").json() == {"studies": []}
    assert_clean_error(bob.post("/v1/studies", json=spec), 404, "predictor_id")   # alice's upload
    # the CLI client watches it to the end; its bar's best is the status's best
    watch = server.cli("status", str(sid), "--watch", "--interval", "0.5", token=alice.headers["Authorization"][7:])
    assert watch.returncode == 0, watch.stderr
    final = alice.get(f"/v1/studies/{sid}").json()
    assert final["state"] == "complete" and final["spent"]["samples"] <= 64
    assert f"best={final['best']['score']}" in watch.stderr
    assert f"score {final['best']['score']}" in watch.stdout and "validity was scored by the guide" in watch.stdout
    # paging: after=N returns only newer trials, and the pages cover every trial once
    seen, after = [], -1
    while True:
        page = alice.get(f"/v1/studies/{sid}/trials", params={"after": after, "limit": 3}).json()
        if not page["trials"]:
            break
        assert all(t["number"] > after for t in page["trials"]) and len(page["trials"]) <= 3
        seen += [t["number"] for t in page["trials"]]
        after = page["next_after"]
    assert seen == list(range(sum(final["trials"].values())))
    best = alice.get(f"/v1/studies/{sid}/best").json()
    assert best["number"] == final["best"]["number"] and best["score"] == final["best"]["score"]
    exported = alice.get(f"/v1/studies/{sid}/export").json()
    assert exported["config"]["study"]["trial"] == best["number"] and "TFGParams.from_dict" in exported["python"]
    assert "/" not in exported["config"]["task"]                    # no server path leaks
    assert exported["notices"] == final["notices"]
    import yaml

    assert yaml.safe_load(alice.get(f"/v1/studies/{sid}/export", params={"format": "yaml"}).text)["params"] == \
        exported["config"]["params"]
    png = alice.get(f"/v1/studies/{sid}/trials/{best['number']}/samples.png")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_bundled_task_study_exports_a_config_sample_reads(server, alice, tmp_path):
    token = alice.headers["Authorization"][7:]
    out = server.cli("submit", "--task", "digits-label", "--target", "7", "--searcher", "beam", "--n-samples", "8",
                     "--budget-samples", "48", "--idempotency-key", "cli-1", token=token)
    assert out.returncode == 0, out.stderr
    sid = int(out.stdout.strip())
    assert server.cli("submit", "--task", "digits-label", "--target", "7", "--searcher", "beam", "--n-samples", "8",
                      "--budget-samples", "48", "--idempotency-key", "cli-1", token=token).stdout.strip() == str(sid)
    from guidetune.api.client import Client

    with Client(server.url, token) as client:
        final = client.wait(sid, interval=0.5, timeout=300)
        assert final["state"] == "complete" and final["judge"] == "independent" and final["notices"] == []
    config = tmp_path / "best.json"
    assert server.cli("export", str(sid), "--out", str(config), token=token).returncode == 0
    smp = server.cli("sample", "--task", "digits-label", "--target", "7", "--config", str(config), "--n", "4",
                     "--out", str(tmp_path / "s.npz"), "--quiet")
    assert smp.returncode == 0, smp.stderr
    bad = server.cli("status", "abc", token=token)
    assert bad.returncode == 2 and "is a number" in bad.stderr


def test_studies_queued_when_the_server_stops_continue_when_it_starts(tmp_path):
    home = tmp_path / "home"
    srv = Server(home, "--executor", "local")
    token = srv.token("carol")
    from guidetune.api.client import Client

    with Client(srv.url, token) as client:
        study = client.create_study(task="digits-label", target="2", searcher="beam", n_samples=8, budget_samples=80)
        for status in client.watch(study["id"], interval=0.2, timeout=300):
            if status["trials"]["complete"] >= 2:
                break
    assert srv.stop(signal.SIGTERM) in (0, -signal.SIGTERM)   # uvicorn re-raises the signal after a graceful stop
    from guidetune.storage.store import StudyStore

    store = StudyStore(f"sqlite:///{home / 'guidetune.db'}")
    paused = store.get_study(study["id"])
    assert paused.state.value == "queued" and "resumes" in paused.stop_reason
    told_before = [t.number for t in store.told_trials(study["id"])]
    srv = Server(home, "--executor", "local")
    try:
        with Client(srv.url, token) as client:
            final = client.wait(study["id"], interval=0.5, timeout=300)
    finally:
        srv.stop()
    assert final["state"] == "complete"
    told = store.told_trials(study["id"])
    assert [t.number for t in told][:len(told_before)] == told_before      # nothing redone or lost
    assert len({t.number for t in told}) == len(told)
    assert sum(t.n_samples for t in told) == final["spent"]["samples"] <= 80


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (.ci/run installs it)")
def test_dashboard_shows_a_study_live_in_a_real_browser(server, tmp_path):
    from playwright.sync_api import sync_playwright

    from guidetune.api.client import Client

    token = server.token("dana")
    with Client(server.url, token) as client:
        sid = client.create_study(task="digits-label", target="5", searcher="beam", n_samples=8,
                                  budget_samples=64, name="dash")["id"]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 1200})
                page.goto(f"{server.url}/#token={token}")
                page.wait_for_selector(f"#study-{sid}")
                assert "dana/dash" in page.inner_text("#studies")
                # it updates while the study runs, without a reload, until the study is complete
                page.wait_for_function("document.getElementById('study-state').textContent === 'complete'",
                                       timeout=300_000)
                page.wait_for_function("document.querySelectorAll('#grids img').length > 0 && "
                                       "[...document.querySelectorAll('#grids img')].every(i => i.naturalWidth > 0)",
                                       timeout=120_000)
                final = client.status(sid)
                assert float(page.inner_text("#best-score")) == pytest.approx(final["best"]["score"], rel=1e-3)
                assert f"{final['spent']['samples']} of 64 samples" in page.inner_text("#progress")
                trials = final["trials"]["complete"]
                assert page.locator("#curve path").count() == 1
                assert page.locator(".trial-dot").count() == trials            # every finished trial plotted
                assert 1 <= page.locator(".pareto-dot").count() <= trials
                assert page.locator("#grids img").count() == min(3, trials)
                page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
                # the token is not kept in the address bar
                assert "token" not in page.url
            finally:
                browser.close()


def test_an_uploaded_diffusion_model_is_validated_and_guided_by_an_uploaded_predictor(alice, bob, nets, tmp_path):
    from guidetune.evaluators.bundled import load_bundled_models

    diffusion = load_bundled_models().diffusion
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([10, 500])
    traced = torch.jit.trace(diffusion, (x, t))
    path = tmp_path / "eps.pt"
    traced.save(str(path))
    meta = {"input_shape": [1, 8, 8], "prediction": "epsilon", "steps": 20, "clip_x0": 1.0}
    r = upload(alice, path, meta, route="/v1/models")
    assert r.status_code == 201, r.text
    model_id = r.json()["id"]
    assert r.json()["metadata"]["found"]["timesteps"] == diffusion.alphas_cumprod.numel()
    assert_clean_error(upload(alice, nets["guide"], meta, route="/v1/models"), 400, "validation failed")
    assert_clean_error(upload(alice, path, meta | {"prediction": "score"}, route="/v1/models"), 400, "'prediction'")
    assert_clean_error(upload(alice, path, meta | {"input_shape": [3, 8, 8]}, route="/v1/models"), 400, "validation failed")
    # a predictor for that model, and a study of both; another owner can use neither
    pred = upload(alice, nets["guide"], CLASSIFIER | {"model": model_id})
    assert pred.status_code == 201, pred.text
    assert_clean_error(upload(bob, nets["guide"], CLASSIFIER | {"model": model_id}), 400, "neither a bundled model")
    spec = {"model": model_id, "predictor_id": pred.json()["id"], "target": "4", "searcher": "beam", "n_samples": 8,
            "budget_samples": 32}
    study = alice.post("/v1/studies", json=spec)
    assert study.status_code == 201, study.text
    assert_clean_error(alice.post("/v1/studies", json=spec | {"model": "digits"}), 400, "was uploaded for model")
    assert_clean_error(alice.post("/v1/studies", json=spec | {"objective": "constrained"}), 400, "reference data")
