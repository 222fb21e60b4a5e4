"""A weight-sharing search end to end: supernet once, inherited trials, a finalist."""

import pytest

pytest.importorskip("torch")

from nascompress.config import ConfigError, parse_config  # noqa: E402
from nascompress.pareto import pareto_front  # noqa: E402
from nascompress.search.experiment import build_experiment  # noqa: E402
from nascompress.search.local import run_local  # noqa: E402
from nascompress.search.records import RunDirectory  # noqa: E402
from nascompress.supernet import training  # noqa: E402

FIXED = {"prune/ratio": {"type": "float", "low": 0.0, "high": 0.0},
         "prune/sparsity": {"type": "float", "low": 0.0, "high": 0.0},
         "lowrank/ratio": {"type": "float", "low": 1.0, "high": 1.0},
         "quant/activations": {"type": "categorical", "choices": [32]},
         "quant/bits": {"type": "categorical", "choices": [4, 8, 32]},
         "quant/scheme": {"type": "categorical", "choices": ["symmetric"]}}
LATENCY = {"min_repeats": 3, "max_repeats": 10, "warmup": 1, "time_cap_s": 0.2}


def config(out, *, space="mobilenet", trials=4, name="ws"):
    space_section = {"name": space}
    if space == "mobilenet":
        space_section.update(options={"stages": [[8, 1], [16, 2]], "max_depth": 2,
                                      "stem_channels": 8, "head_channels": 16},
                             dimensions=FIXED)
    return parse_config({
        "name": name, "output_dir": str(out), "trials": trials, "runner": "local",
        "seed": 0, "dataset": {"name": "digits"}, "space": space_section,
        "strategy": {"name": "random"},
        "evaluator": {"name": "supernet", "options": {
            "epochs": 2, "warmup_epochs": 1, "finalists": 1, "finetune_epochs": 1,
            "bn_batches": 2, "latency": LATENCY}},
    })


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    experiment = build_experiment(config(out))
    run_local(experiment, stream=None)
    return out, experiment, RunDirectory(out / "ws")


def test_trials_inherit_and_the_finalist_is_fine_tuned(finished):
    _, experiment, run = finished
    records = run.load_trials()
    search = [r for r in records if r["stage"] == "search"]
    final = [r for r in records if r["stage"] == "final"]
    assert len(search) == 4 and len(final) == 1
    assert all(r["state"] == "COMPLETE" for r in records)
    assert {r["metrics"]["accuracy_source"] for r in search} == {"inherited"}
    # digits' validation split: 269 images, the largest class 27 of them
    assert [(r["metrics"]["chance_accuracy"], r["metrics"]["val_samples"])
            for r in records] == [(pytest.approx(27 / 269), 269)] * len(records)
    assert final[0]["metrics"]["accuracy_source"] == "fine-tuned"
    chosen = final[0]["metrics"]["finalist_of"]
    assert final[0]["params"] == search[chosen]["params"]
    assert final[0]["metrics"]["search_objectives"] == search[chosen]["objectives"]
    for record in records:  # the artifact is what size_bytes measures
        artifact = run.models_dir / record["metrics"]["artifact"]
        assert artifact.stat().st_size == record["objectives"]["size_bytes"]
    # The supernet is recorded once, and the front is the finalists'.
    supernet = run.read_run()["supernet"]
    assert supernet["epochs"] == 2 and len(supernet["history"]) == 2
    # prepare_device "auto": the driver's GPU when torch sees one, in the recipe's AMP.
    import torch

    on = "cuda" if torch.cuda.is_available() else "cpu"
    assert {(h["device"], h["precision"] == "fp32") for h in supernet["history"]} == {
        (on, on == "cpu")}
    settings = run.read_run()["evaluator"]["settings"]
    assert settings["prepare_device"] == "auto" and "device" not in settings
    assert (run.path / supernet["checkpoint"]).exists()
    front = pareto_front(records, experiment.objectives)
    assert [r["stage"] for r in front] == ["final"]


def test_a_resumed_search_reuses_the_supernet_and_its_finalists(finished):
    out, _, run = finished
    before = run.load_trials()
    experiment = build_experiment(config(out), allow_existing=True)
    run_local(experiment, resume=True, stream=None)
    assert run.load_trials() == before
    assert run.read_run()["supernet"]["train_s"] == 0.0  # reused, not retrained


def test_trials_load_the_supernet_once_per_process(finished):
    assert training.loaded_count() == 1


def test_a_space_without_a_supernet_is_refused_before_any_compute(tmp_path):
    with pytest.raises(ConfigError, match="'image-cnn' does not support weight sharing yet"):
        build_experiment(config(tmp_path, space="image-cnn"))


def test_a_gpu_asked_for_on_a_driver_without_one_is_a_config_error(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = config(tmp_path)
    cfg.evaluator.options["prepare_device"] = "cuda"
    with pytest.raises(ConfigError, match=r"^evaluator.prepare_device is 'cuda', but torch "
                                          r"sees no GPU on this machine"):
        build_experiment(cfg)
    assert not any(tmp_path.iterdir())
    # With Ray Train workers the cluster's GPUs count, not the driver's: not refused here.
    cfg.evaluator.options["workers"] = 2
    build_experiment(cfg)


def test_the_front_pick_and_report_say_whose_score_is_inherited(finished, tmp_path):
    from nascompress.picking import pick
    from nascompress.tables import front_rows, front_table

    _, experiment, run = finished
    records = run.load_trials()
    front = pareto_front(records, experiment.objectives)
    table = front_table(front, experiment.objectives)
    assert table.splitlines()[0].split()[:5] == ["trial", "accuracy", "size_bytes",
                                                  "latency_ms", "source"]
    assert "fine-tuned" in table
    assert front_rows(front, experiment.objectives)[0]["score_source"] == "fine-tuned"
    choice = pick(records, experiment.objectives)
    assert "(score fine-tuned)" in choice.explanation
    # Every search trial on a table of all trials says "inherited".
    everything = front_table([r for r in records if r["stage"] == "search"],
                             experiment.objectives, wide=True)
    assert everything.count("inherited") == 4

    pytest.importorskip("plotly")
    from nascompress.report import build_report

    html = build_report(run.path, out=tmp_path / "report.html").read_text()
    assert "score_source" in html and html.count(">inherited<") == 4
    assert "the finalists: extracted from the supernet, fine-tuned" in html


@pytest.mark.ray
def test_a_weight_sharing_search_runs_on_ray_tune(ray_session, tmp_path):
    from nascompress.search.controller import run_ray

    cfg = config(tmp_path, trials=3, name="ws-ray")
    experiment = build_experiment(cfg.model_copy(update={"runner": "ray", "max_concurrent": 2}))
    run_ray(experiment, stream=None)
    records = RunDirectory(tmp_path / "ws-ray").load_trials()
    assert [r["state"] for r in records] == ["COMPLETE"] * 4, [r["error"] for r in records]
    assert sorted(r["stage"] for r in records) == ["final", "search", "search", "search"]
    assert {r["metrics"]["accuracy_source"] for r in records if r["stage"] == "search"} == {
        "inherited"}
    front = pareto_front(records, experiment.objectives)
    assert [r["stage"] for r in front] == ["final"]


@pytest.mark.ray
def test_a_node_without_the_run_folder_reads_the_supernet_from_the_object_store(
        ray_session, finished, tmp_path):
    from nascompress.evaluators import TrialContext
    from nascompress.supernet.training import _LOADED

    _, experiment, run = finished
    evaluator, space = experiment.evaluator, experiment.space
    dataset = experiment.dataset
    # Prepared again with Ray up: the finished supernet is reused and its bytes shared.
    prepared = evaluator.prepare(space=space, dataset=dataset, seed=0, workdir=run.path)
    assert "supernet_copy" in prepared.shared
    params = run.load_trials()[0]["params"]

    def score(shared):
        context = TrialContext(trial_id="probe", seed=7, artifact_dir=tmp_path / "a",
                               shared=shared)
        return evaluator.evaluate(params, space=space, dataset=dataset, context=context)

    here = score(prepared.shared)["accuracy"]
    _LOADED.clear()
    elsewhere = {**prepared.shared, "supernet_checkpoint": str(tmp_path / "no" / "supernet.pt")}
    assert score(elsewhere)["accuracy"] == here
    assert [key[0] for key in _LOADED] == ["object store"]
    _LOADED.clear()
    with pytest.raises(FileNotFoundError, match="not readable on this node"):
        score({"supernet_checkpoint": elsewhere["supernet_checkpoint"]})


OBJECTIVES_3 = (("accuracy", "max"), ("size_bytes", "min"), ("latency_ms", "min"))


def _trial(number, accuracy, size, latency=1.0):
    return {"number": number, "state": "COMPLETE", "params": {"x": number},
            "objectives": {"accuracy": accuracy, "size_bytes": size, "latency_ms": latency}}


def test_finalists_are_the_points_covering_the_most_hypervolume():
    from nascompress.evaluators import SupernetEvaluator
    from nascompress.objectives import Objective

    objectives = [Objective(name, mode) for name, mode in OBJECTIVES_3]
    huge, large, small, chance = (_trial(0, 0.95, 1_000_000), _trial(1, 0.93, 100_000),
                                  _trial(2, 0.90, 10_000), _trial(3, 0.10, 9_000))
    evaluator = SupernetEvaluator(finalists=2)
    # The front's ends (the largest model and a chance-level one) are what crowding
    # would pick first; they add the least to the front. A repeated candidate counts once.
    chosen = evaluator.finalists([huge, large, small, chance, dict(small, number=4)],
                                 objectives=objectives)
    assert [t["number"] for t in chosen] == [2, 1]
    assert SupernetEvaluator(finalists=0).finalists([large], objectives=objectives) == []
    assert evaluator.finalists([], objectives=objectives) == []


def _with_chance(trial, chance=0.1, samples=750):
    return {**trial, "metrics": {"chance_accuracy": chance, "val_samples": samples}}


def test_a_finalist_at_chance_accuracy_is_chosen_only_when_too_few_others_are_left():
    from nascompress.evaluators import SupernetEvaluator
    from nascompress.evaluators.supernet import at_chance
    from nascompress.objectives import Objective

    objectives = [Objective(name, mode) for name, mode in OBJECTIVES_3]
    large, medium, small = (_trial(0, 0.95, 100_000), _trial(1, 0.90, 30_000),
                            _trial(2, 0.80, 10_000))
    tiny = _trial(3, 0.12, 1_000)  # 0.1 + 3 standard errors on 750 images is 0.133
    evaluator = SupernetEvaluator(finalists=2)
    # Without a recorded chance level the tiny model adds the second most hypervolume...
    assert [t["number"] for t in evaluator.finalists([large, medium, small, tiny],
                                                     objectives=objectives)] == [2, 3]
    # ...with one, it is indistinguishable from guessing and left out,
    pool = [_with_chance(t) for t in (large, medium, small, tiny)]
    assert [t["number"] for t in evaluator.finalists(pool, objectives=objectives)] == [2, 1]
    # but taken when too few others are left (the count is what the user asked for).
    chosen = evaluator.finalists([pool[0], pool[3]], objectives=objectives)
    assert [t["number"] for t in chosen] == [0, 3]
    # The margin shrinks with more validation images; another score has no chance level.
    assert at_chance(_with_chance(tiny), "accuracy")
    assert not at_chance(_with_chance(tiny, samples=20_000), "accuracy")
    assert not at_chance(_with_chance(tiny), "f1")
    assert not at_chance(tiny, "accuracy")


def test_greedy_hypervolume_continues_a_choice_among_given_candidates():
    from nascompress.evaluators.supernet import greedy_hypervolume

    vectors = [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.2, 0.2]]
    assert greedy_hypervolume(vectors, [1.1, 1.1], 2) == [3, 0]
    assert greedy_hypervolume(vectors, [1.1, 1.1], 2, among=[0, 1, 2]) == [2, 0]
    assert greedy_hypervolume(vectors, [1.1, 1.1], 3, chosen=[1]) == [1, 3, 0]
    assert greedy_hypervolume(vectors, [1.1, 1.1], 5, among=[1]) == [1]


def test_finalist_axes_take_costs_by_ratio_and_the_score_linearly():
    from nascompress.evaluators.supernet import finalist_axes
    from nascompress.objectives import Objective

    objectives = [Objective(name, mode) for name, mode in OBJECTIVES_3]
    pool = [_trial(0, 0.9, 100, 2.0), _trial(1, 0.5, 1_000, 2.0), _trial(2, 0.7, 10_000, 2.0)]
    axes = finalist_axes(pool, objectives, score="accuracy")
    # accuracy: best 0, worst 1, linear in between; size: 10x steps are equal steps;
    # latency: all equal, so it separates nothing.
    assert [v for row in axes for v in row] == pytest.approx(
        [0.0, 0.0, 0.0, 1.0, 0.5, 0.0, 0.5, 1.0, 0.0])
    # A cost with a non-positive value has no log: it is scaled linearly.
    pool[0]["objectives"]["size_bytes"] = 0
    assert finalist_axes(pool, objectives, score="accuracy")[1][1] == pytest.approx(0.1)
