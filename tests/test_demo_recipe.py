"""tools/demo_model/recipe.py, the one-command reproduction of the shipped demo model: its stages name
existing configs and chain, its last stages are the model card's run28-run35 and avg35 commands, markers make a
rerun go on after the last finished stage, and a failed command stops it with one line. Nothing is trained
here: the command runner is replaced by one that records the commands."""

import shlex
import sys
from pathlib import Path


from tools.demo_model import recipe

TOOLS = Path(recipe.__file__).parent

# The model card's commands for the last stages, run28-run32, avg32, run34, avg34, run35 and avg35
# (docs/demo_model.md "Training recipe"; the eighteenth to twenty-fourth sessions' in
# docs/history/demo-model-training-log.md),
# comments left out.
CARD_LAST = r"""
python -m tools.demo_model.make_corpus --out /work/demo_corpus9 --train-per-lang 4000 --test-per-lang 150 \
    --words-per-lang 400 --extra-train-per-lang 8000 --train-variants wide \
    --random-variants 240 --variant-seed 4 --splits train --workers 2
python -m tools.demo_model.rebuild_spm --out /work/demo_corpus9/run28
python -m tools.demo_model.train --corpus /work/demo_corpus9 --out /work/demo_corpus9/run28 \
    --config tools/demo_model/demo_config_longform4.json --init-from onepass/assets/demo --lazy-features \
    --deadline-min 85
python -m tools.demo_model.rebuild_spm --out /work/demo_corpus9/run29
python -m tools.demo_model.train --corpus /work/demo_corpus9 --out /work/demo_corpus9/run29 \
    --config tools/demo_model/demo_config_longform5.json --init-from /work/demo_corpus9/run28/hf_ema \
    --lazy-features --deadline-min 38
python -m tools.demo_model.rebuild_spm --out /work/demo_corpus9/run30
python -m tools.demo_model.train --corpus /work/demo_corpus9 --out /work/demo_corpus9/run30 \
    --config tools/demo_model/demo_config_longform6.json --init-from /work/demo_corpus9/run29/hf_ema \
    --lazy-features --deadline-min 55
python -m tools.demo_model.rebuild_spm --out /work/demo_corpus9/run31
python -m tools.demo_model.train --corpus /work/demo_corpus9 --out /work/demo_corpus9/run31 \
    --config tools/demo_model/demo_config_longform7.json --init-from /work/demo_corpus9/run30/hf_ema \
    --lazy-features --deadline-min 55
python -m tools.demo_model.rebuild_spm --out /work/demo_corpus9/run32
python -m tools.demo_model.train --corpus /work/demo_corpus9 --out /work/demo_corpus9/run32 \
    --config tools/demo_model/demo_config_longform8.json --init-from /work/demo_corpus9/run31/hf_ema \
    --lazy-features --deadline-min 58
python -m tools.demo_model.average --out /work/demo_corpus9/avg32/hf_ema /work/demo_corpus9/run31/hf_ema \
    /work/demo_corpus9/run32/hf_ema
python -m tools.demo_model.rebuild_spm --out /work/demo_corpus9/run34
python -m tools.demo_model.train --corpus /work/demo_corpus9 --out /work/demo_corpus9/run34 \
    --config tools/demo_model/demo_config_longform10.json --init-from /work/demo_corpus9/avg32/hf_ema \
    --lazy-features --deadline-min 55
python -m tools.demo_model.average --out /work/demo_corpus9/avg34/hf_ema /work/demo_corpus9/avg32/hf_ema \
    /work/demo_corpus9/run34/hf_ema
python -m tools.demo_model.rebuild_spm --out /work/demo_corpus9/run35
python -m tools.demo_model.train --corpus /work/demo_corpus9 --out /work/demo_corpus9/run35 \
    --config tools/demo_model/demo_config_longform11.json --init-from /work/demo_corpus9/avg34/hf_ema \
    --lazy-features --deadline-min 55
python -m tools.demo_model.average --out /work/demo_corpus9/avg35/hf_ema /work/demo_corpus9/avg34/hf_ema \
    /work/demo_corpus9/run35/hf_ema
python -m tools.demo_model.export --run /work/demo_corpus9/avg35 --corpus /work/heldout --weights hf_ema
ln -s /work/demo_corpus9/train.jsonl /work/heldout/train.jsonl
bash tools/demo_model/eval_all.sh onepass/assets/demo /work/heldout /work/eval_avg35
python -m tools.demo_model.eval_table /work/eval_avg35/results.jsonl
"""


def dry_run(work: Path, capsys, *extra: str) -> dict[str, list[list[str]]]:
    """The dry run's commands (shlex-split), by the '# name' line that heads them."""
    assert recipe.main(["--work", str(work), "--dry-run", *extra]) == 0
    groups: dict[str, list[list[str]]] = {}
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("# "):
            name = line[2:]
            groups[name] = []
        else:
            groups[name].append(shlex.split(line))
    assert not work.exists()  # nothing ran, nothing was written
    return groups


def option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def train_command(commands: list[list[str]]) -> list[str]:
    (train,) = [c for c in commands if c[:3] == ["python", "-m", "tools.demo_model.train"]]
    return train


def test_dry_run_names_every_stage_config_and_each_exists(tmp_path, capsys):
    groups = dry_run(tmp_path / "w", capsys)
    named = {option(c, "--config") for cs in groups.values() for c in cs} - {None}
    shipped = ({p.name for p in TOOLS.glob("demo_config.json")} | {p.name for p in TOOLS.glob("demo_config_stage*.json")}
               | {"demo_config_longform3.json", "demo_config_longform4.json", "demo_config_longform5.json",
                  "demo_config_longform6.json", "demo_config_longform7.json", "demo_config_longform8.json",
                  "demo_config_longform10.json", "demo_config_longform11.json"})
    assert {Path(n).name for n in named} == shipped  # the other long-form configs (runs not shipped) are not stages
    for n in named:
        assert (recipe.REPO / n).is_file(), n
    assert list(groups) == ["demo_corpus3", "run13a", "run13b", "demo_corpus4", "run14", "run15", "run16", "heldout",
                            "run17", "run18", "run19", "demo_corpus5", "run20", "demo_corpus6", "run22",
                            "demo_corpus7", "run23", "demo_corpus8", "run24", "demo_corpus9", "run27", "run28", "run29",
                            "run30", "run31", "run32", "avg32", "run34", "avg34", "run35", "avg35", "demo"]
    made = [option(c, "--out") for cs in groups.values() for c in cs if "tools.demo_model.make_corpus" in c]
    assert len(made) == len(set(made)) == len(recipe.CORPORA)  # each corpus once


def test_stages_chain(tmp_path, capsys):
    work = tmp_path / "w"
    groups = dry_run(work, capsys)
    first = train_command(groups[recipe.STAGES[0].name])
    assert "--init-from" not in first and "--resume" not in first
    for prev, stage in zip(recipe.STAGES, recipe.STAGES[1:]):
        if stage.init == "average":  # no training: the named earlier stages' shipped weights, averaged
            avg, *export = groups[stage.name]  # then exported when a stage starts from it
            assert avg[:3] == ["python", "-m", "tools.demo_model.average"]
            sources = [s for s in recipe.STAGES if s.name in stage.average]
            assert [s.name for s in sources] == list(stage.average) and prev in sources
            assert avg[5:] == [str(recipe.run_dir(work, s) / s.weights) for s in sources]
            assert option(avg, "--out") == str(recipe.run_dir(work, stage) / stage.weights)
            assert len(export) == (stage is not recipe.STAGES[-1])
            continue
        before, now = groups[prev.name], train_command(groups[stage.name])
        prev_out = str(recipe.run_dir(work, prev))
        if prev.init != "average":
            assert option(train_command(before), "--out") == prev_out
        if stage.init == "resume":
            assert "--resume" in now and option(now, "--out") == prev_out
        elif stage.init == "ckpt":
            assert option(now, "--init-from") == f"{prev_out}/ckpt.pt"
        else:
            assert stage.init == "hf"
            (export,) = [c for c in before if "tools.demo_model.export" in c]
            assert option(export, "--run") == prev_out
            assert option(now, "--init-from") == option(export, "--dst")
            assert str(work) in option(export, "--dst")  # never onepass/assets/demo
            (spm,) = [c for c in groups[stage.name] if "tools.demo_model.rebuild_spm" in c]
            assert option(spm, "--out") == option(now, "--out")
    (export, *_) = groups[recipe.FINAL]
    assert option(export, "--run") == str(recipe.run_dir(work, recipe.STAGES[-1])) == str(work / "demo_corpus9/avg35")
    assert option(export, "--dst") == str(work / "demo")


def test_last_stages_are_the_model_cards_run28_to_avg35(tmp_path, capsys):
    work = tmp_path / "w"
    groups = dry_run(work, capsys)
    # The card starts run28 from the shipped run27 (onepass/assets/demo) and run29 to run32 from the
    # previous run's weight average as the trainer wrote it, run34 from avg32's, run35 from avg34's, and exports
    # avg35 to and evaluates
    # onepass/assets/demo;
    # the recipe keeps all of them in WORK, each weight average exported to <run>/export first.
    between = {str(work / "demo_corpus9" / run / "export"): f"/work/demo_corpus9/{run}/hf_ema"
               for run in ("run28", "run29", "run30", "run31", "avg32", "avg34")}
    shipped = {str(work / "demo_corpus9" / "run27" / "export"): "onepass/assets/demo", **between,
               str(work / "demo"): "onepass/assets/demo", "-sf": "-s"}

    def normalise(argv: list[str]) -> list[str]:
        out = []
        skip = False
        for a in argv:
            if skip:
                skip = False
            elif a in ("--check", "--dst", "--samples"):  # the card leaves them at onepass/assets (defaults)
                skip = True
            elif a == ">":  # eval_table's table file
                break
            else:
                out.append(shipped.get(a, a).replace(str(work), "/work"))
        return out

    commands = [c for name in ("demo_corpus9", "run28", "run29", "run30", "run31", "run32", "avg32", "run34", "avg34",
                               "run35", "avg35", "demo")
                for c in groups[name]]
    exports = [c for c in commands if option(c, "--dst") in between]
    assert len(exports) == 6 and all(option(c, "--weights") == "hf_ema" for c in exports)
    ours = [normalise(c) for c in commands if option(c, "--dst") not in between]
    card = [shlex.split(line) for line in CARD_LAST.replace("\\\n", " ").strip().splitlines()]
    assert ours == card


def test_list_prints_one_line_per_stage(capsys):
    assert recipe.main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [s.name for s in recipe.STAGES] + [recipe.FINAL]
    assert "demo_config_stage5.json" in lines[5] and "ckpt.pt of run16" in lines[5] and "120 min" in lines[5]


def test_markers_make_a_rerun_skip_finished_stages(tmp_path, capsys, monkeypatch):
    work = tmp_path / "w"
    everything = [c for cs in dry_run(work, capsys).values() for c in cs]
    calls: list[list[str]] = []
    fail_on = {"command": None}

    def fake(command: recipe.Command) -> int:
        calls.append(shlex.split(str(command)))
        return 1 if calls[-1] == fail_on["command"] else 0

    monkeypatch.setattr(recipe, "run_command", fake)
    run15 = train_command(dry_run(work, capsys, "--from-stage", "run15", "--until-stage", "run15")["run15"])
    fail_on["command"] = run15
    assert recipe.main(["--work", str(work)]) == 1
    assert calls[-1] == run15
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "run15" in err and "Traceback" not in err
    assert sorted(p.name for p in (work / "done").iterdir()) == ["demo_corpus3", "demo_corpus4", "run13a",
                                                                   "run13b", "run14"]
    done = len(calls) - 1
    calls.clear()
    fail_on["command"] = None
    assert recipe.main(["--work", str(work)]) == 0
    assert calls[0] == run15  # goes on at the failed stage; corpora and earlier stages are not made again
    assert done + len(calls) == len(everything)
    assert "held-out tables:" in capsys.readouterr().out
    calls.clear()
    assert recipe.main(["--work", str(work)]) == 0 and calls == []  # all done: nothing runs
    (work / "done" / recipe.FINAL).unlink()
    assert recipe.main(["--work", str(work)]) == 0
    assert calls == everything[-4:]  # the final export and evaluation alone


def test_the_runner_reports_a_failing_command(tmp_path):
    assert recipe.run_command(recipe.Command(("python", "-c", "raise SystemExit(3)"))) == 3
    assert recipe.run_command(recipe.Command(("no-such-program-here",))) == 127
    out = tmp_path / "t" / "x.txt"
    assert recipe.run_command(recipe.Command(("python", "-c", "import sys; print(sys.executable)"), stdout=out)) == 0
    assert out.read_text().strip() == sys.executable
