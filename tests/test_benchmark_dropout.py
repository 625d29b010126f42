"""scripts/benchmark.py with dropout: the rate reaches every implementation's worker and model, and the tables say it.

`--dropout RATE` (the main model) and `dropout=RATE` in a `--model` set the rate every implementation
trains with; these tests check the plumbing (parsing, specs, headings, JSON/CSV rows) and our model as the
worker builds it. timm and keras-hub are not installed here: their argument mapping is checked as data.
"""

import csv
import json

import numpy as np
import pytest
from conftest import benchmark_script, to_numpy

benchmark = benchmark_script()  # puts scripts/ on sys.path: the bench package imports below
from bench import outputs, workloads  # noqa: E402
from bench.specs import job_specs, label, section_title, tf_repeat_spec  # noqa: E402
from bench.tables import markdown_section  # noqa: E402

TUTORIAL = "preset=vit_mnist_p7,image_size=28,batch_size=128,num_classes=10,tasks=train"


@pytest.mark.single_backend
def test_each_models_dropout_reaches_all_its_workers_and_the_others_default_to_the_main_rate():
    args = benchmark.parse_args(
        ["--dropout", "0.2", "--tasks", "train,infer", "--compare", "timm,keras-hub", "--tf-repeats", "1"]
        + ["--model", TUTORIAL + ",dropout=0.1", "--model", TUTORIAL, "--model", TUTORIAL + ",dropout=0"]
    )
    assert [section["dropout"] for section in args.sections] == [0.2, 0.1, 0.2, 0.0]
    specs = job_specs(args)
    for index, rate in enumerate([0.2, 0.1, 0.2, 0.0]):
        mine = [spec for spec in specs if spec["section"] == index]
        assert {spec["impl"] for spec in mine} == {"vit_keras", "timm", "keras-hub"}
        assert {spec["dropout"] for spec in mine} == {rate}
    assert tf_repeat_spec(args)["dropout"] == 0.2
    assert section_title(args.sections[1]) == "vit_mnist_p7, 28 px, batch 128, dropout 0.1"
    assert section_title(args.sections[3]) == "vit_mnist_p7, 28 px, batch 128"


@pytest.mark.single_backend
def test_without_dropout_nothing_is_dropped_and_the_names_are_unchanged():
    args = benchmark.parse_args(["--compare", "timm,keras-hub"])
    specs = job_specs(args)
    assert {spec["dropout"] for spec in specs} == {0.0}
    assert section_title(args.sections[0]) == "vit_ti16, 224 px, batch 32"
    assert not [spec for spec in specs if "dropout" in label(spec)]
    # The preset's own dropout (vit_mnist_p7 has 0.1) is not used: the spec's rate is.
    spec = dict(preset="vit_mnist_p7", image_size=28, num_classes=10)
    assert workloads.architecture(spec)["dropout"] == 0.0
    assert workloads.architecture(dict(spec, dropout=0.3))["dropout"] == 0.3


def _record(section, impl, task="train", backend="tensorflow", run=None, dropout=0.0):
    spec = dict(impl=impl, task=task, backend=backend, precision="float32", batch_size=32, section=section)
    spec["dropout"] = dropout  # as the spec builder sets it (checked above)
    record = dict(
        spec=spec,
        name=f"{impl} {task} {backend} float32",
        step_times=[1.0, 1.2],
        loads=[1.0],
        usages=[],
        peak_rss_mb=1.0,
        ready=dict(forward_flops=1e9, info={}),
    )
    return record if run is None else dict(record, run=run)


@pytest.mark.single_backend
def test_headings_and_json_csv_rows_name_the_dropout_that_was_trained(tmp_path):
    args = benchmark.parse_args(["--dropout", "0.05", "--tasks", "train", "--model", TUTORIAL + ",dropout=0"])
    rate = args.sections[0]["dropout"]
    results = [_record(0, "vit_keras", dropout=rate), _record(0, "timm", backend="torch", dropout=rate)]
    results.append(_record(1, "vit_keras", dropout=args.sections[1]["dropout"]))
    report = benchmark._report(args, (results, {}, {}, [_record(0, "vit_keras", run=1, dropout=rate)]), "cmd", "now")
    assert [(row["section"], row["dropout"]) for row in report["rows"]] == [(0, 0.05), (0, 0.05), (1, 0.0)]
    assert [row["dropout"] for row in report["tf_rows"]] == [0.05]

    text = markdown_section(report, "t", "2026-12-02")
    assert "#### vit_ti16, 224 px, batch 32, dropout 0.05: training" in text
    assert "#### vit_mnist_p7, 28 px, batch 128: training" in text  # no dropout: the heading as before
    assert f"fresh processes of `{report['tf_name']}`, dropout 0.05" in text

    outputs.write_csv(str(tmp_path / "rows.csv"), report["rows"] + report["tf_rows"])
    with open(tmp_path / "rows.csv") as f:
        assert [row["dropout"] for row in csv.DictReader(f)] == ["0.05", "0.05", "0.0", "0.05"]
    outputs.write_json(str(tmp_path / "run.json"), report)
    written = json.loads((tmp_path / "run.json").read_text())
    assert [section["dropout"] for section in written["sections"]] == [0.05, 0.0]


def _our_workload(rate):
    spec = dict(impl="vit_keras", task="train", backend="tensorflow", precision="float32", preset="vit_mnist_p7")
    spec.update(image_size=28, batch_size=8, num_classes=10, jit_compile="false", steps_per_execution=1)
    return workloads.build_workload(dict(spec, dropout=rate)), spec


@pytest.mark.single_backend
def test_our_worker_builds_the_model_with_the_specs_dropout_and_it_drops_only_in_training():
    workload, spec = _our_workload(0.1)
    model = workload.model
    assert (workload.info["dropout"], workload.info["attention_dropout"]) == (0.1, 0.0)
    assert model.get_layer("embedding_dropout").rate == pytest.approx(0.1)
    block = model.get_layer("encoder_block_0")
    assert (block.dropout, block.attention_dropout, block.drop_path) == (0.1, 0.0, 0.0)
    assert block.dropout_layer.rate == pytest.approx(0.1)
    images, _ = workloads.synthetic_batch(spec)
    inference = to_numpy(model(images, training=False))
    assert np.allclose(to_numpy(model(images, training=False)), inference)
    assert not np.allclose(to_numpy(model(images, training=True)), inference, atol=1e-4)

    plain, _ = _our_workload(0.0)  # the preset's own 0.1 is not applied: training = inference
    assert plain.info["dropout"] == 0.0 and plain.model.get_layer("encoder_block_0").dropout_layer is None
    assert np.allclose(to_numpy(plain.model(images, training=True)), to_numpy(plain.model(images)), atol=1e-6)


@pytest.mark.single_backend
def test_the_peers_drop_the_tensors_ours_drops_and_nothing_else():
    # ours: after the position embedding, the attention projection, the MLP activation and the MLP output.
    timm = workloads.timm_dropout_arguments(0.1)
    assert (timm["pos_drop_rate"], timm["proj_drop_rate"]) == (0.1, 0.1)  # pos_drop; attn.proj_drop, mlp.drop1/2
    assert (timm["attn_drop_rate"], timm["drop_rate"]) == (0.0, 0.0)  # attention weights, head: ours has neither
    backbone, classifier = workloads.keras_hub_dropout_arguments(0.1)
    assert backbone == dict(dropout_rate=0.1, attention_dropout=0.0) and classifier == dict(dropout=0.0)
    assert set(workloads.timm_dropout_arguments(0.0).values()) == {0.0}
